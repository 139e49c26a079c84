"""What a run is: its status, its kind and the record the store keeps of it.

Pure Python: the store, the worker, the pages and the CLI share these without
importing each other (or Keras).
"""

import enum
import json
from dataclasses import dataclass, field

from fmnist.models import ModelSpec


class RunStatus(enum.StrEnum):
    """queued -> running -> finished | stopped | failed; a queued run can be cancelled;
    a run whose process died is interrupted. The values are what the store holds."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    PRUNED = "pruned"  # a search's trial that its validation curve showed not worth finishing

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @property
    def has_model(self) -> bool:
        """A finished or stopped run saved what it learnt."""
        return self in (RunStatus.FINISHED, RunStatus.STOPPED)


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
ENDED = tuple(status for status in RunStatus if status not in ACTIVE)


class RunKind(enum.StrEnum):
    """The run kinds' registry: each is the module fmnist/jobs/<value>.py, whose JobKind does its work
    (fmnist.jobs finds it there). A new kind is that module and one line here."""

    TRAIN = "train"  # one model, scored on the test set
    CV = "cv"  # k-fold cross-validation of a run's spec, scored on the held-out folds
    SEEDS = "seeds"  # a run's spec again with N seeds: the test accuracy's spread
    SEARCH = "search"  # a search over a space of specs (fmnist.search); its trials are its children
    TRIAL = "trial"  # one configuration a search tried, scored on validation accuracy only
    PROJECTION = "projection"  # a trained run's test images in 2-D (t-SNE), kept with that run (its parent)
    EXPORT = "export"  # a trained run's model as ONNX, LiteRT or SavedModel, checked, kept with that run


# The queues a run waits in for a slot (fmnist.store.RunStore.claim_slot): trainings (and a search's
# trials); searches, one at a time; and the work done on a trained run's model (its projection, its
# exports): short, no training, so it neither waits behind trainings nor counts towards a person's
# limit on runs queued or running.
TRAINING_QUEUE, SEARCH_QUEUE, DERIVED_QUEUE = "training", "search", "derived"


class LimitError(RuntimeError):
    """A person has as many trainings queued or running as they may; the message says so."""


class ModelFileError(RuntimeError):
    """A run's model file is missing or unreadable."""


def stored_spec(spec_json: str) -> ModelSpec:
    """A run's spec as the store holds it. One stored before mixed precision existed has no such field
    and trained in float32: it still does, wherever it trains again (True or False stored are kept too;
    a spec without the field from anywhere else gets the default, auto)."""
    return ModelSpec.from_dict({"mixed_precision": False, **json.loads(spec_json)})


@dataclass
class Run:
    id: int
    name: str
    spec: ModelSpec
    status: RunStatus
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    pid_started: str | None
    train_limit: int | None
    params: int
    epoch: int
    step: int
    steps_per_epoch: int | None
    samples_per_s: float | None
    updated_at: float | None
    stop_requested: bool
    test_loss: float | None
    test_acc: float | None
    train_s: float | None
    best_val_acc: float | None
    error: str | None
    kind: RunKind
    parent_id: int | None
    owner: str | None  # who started it (fmnist.access.Person.id); None: this machine's own user
    owner_name: str | None
    backend_setting: str | None  # what the run asked for: auto, tensorflow or jax
    backend: str | None  # the Keras backend that trained it, once it started
    device: str | None  # the CPU's model name, or the GPU's name when it trained on one
    cluster_job: str | None  # the Ray job it was submitted as (fmnist.cluster); None: a local process
    # What only some kinds have. settings, a kind's inputs: "space" (a search's, SearchSpace as a
    # dict), "repeats" (a cv or seeds job's folds or seeds), "variant" (an export's format, a
    # fmnist.export_formats.Variant's key, and "out", where the command line copies it). result, its
    # outputs: on a cv or seeds job "scores", "mean", "std"; on the run a job repeats, {"cv": {"mean",
    # "std", "job"}} and {"seeds": {...}} (the job: its run id); on a derived run "stage" (see stage)
    # and what its kind reports when it ends (a projection's "seconds", an export's "check").
    settings: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    queue: str = TRAINING_QUEUE  # the queue it waits in for a slot: TRAINING_QUEUE, SEARCH_QUEUE or DERIVED_QUEUE

    @classmethod
    def from_row(cls, row) -> "Run":
        """From a database row as a mapping of column names to values."""
        data = dict(row)
        data["spec"] = stored_spec(data.pop("spec_json"))
        data["status"] = RunStatus(data["status"])
        data["kind"] = RunKind(data["kind"])
        data["stop_requested"] = bool(data["stop_requested"])
        data["settings"] = json.loads(data.pop("settings_json") or "{}")
        data["result"] = json.loads(data.pop("result_json") or "{}")
        return cls(**data)

    # --- the kinds' settings and results under the names they always had ---

    @property
    def space(self) -> dict | None:
        """A search's space (fmnist.search_space.SearchSpace as a dict)."""
        return self.settings.get("space")

    @property
    def space_json(self) -> str | None:
        return json.dumps(self.space) if self.space is not None else None

    @property
    def repeats(self) -> int | None:
        """A cv job's folds, a seeds job's seeds."""
        return self.settings.get("repeats")

    @property
    def scores(self) -> list[float]:
        """A job's scores so far (one per fold or seed)."""
        return self.result.get("scores", [])

    def job_summary(self, kind: RunKind) -> dict:
        """The mean and spread of a job of that kind: the job's own, or on a run, its job's."""
        return self.result if self.kind == kind else self.result.get(str(kind), {})

    @property
    def cv_mean(self) -> float | None:
        return self.job_summary(RunKind.CV).get("mean")

    @property
    def cv_std(self) -> float | None:
        return self.job_summary(RunKind.CV).get("std")

    @property
    def seeds_mean(self) -> float | None:
        return self.job_summary(RunKind.SEEDS).get("mean")

    @property
    def seeds_std(self) -> float | None:
        return self.job_summary(RunKind.SEEDS).get("std")

    @property
    def max_minutes(self) -> float | None:
        """The minutes of training its teacher's cap allowed it when it started (fmnist.access.Caps), if any."""
        return self.settings.get("max_minutes")

    @property
    def stopped_at_cap(self) -> bool:
        """Its training stopped at that cap (fmnist.training.StreamToStore), not by someone's Stop."""
        return bool(self.result.get("stopped_at_cap"))

    @property
    def derived(self) -> bool:
        """Work on a trained run's model (its parent), not a training: a projection, an export. It trains
        nothing and keeps no model of its own; what it makes is kept with its parent."""
        return self.queue == DERIVED_QUEUE

    @property
    def stage(self) -> dict | None:
        """Where a run that works in stages rather than epochs stands (a derived run): {"stage": what it
        does now, "fraction": how much of it is done}; None before it reports."""
        return self.result.get("stage")

    def progress_text(self) -> str:
        """Where a running run stands, in a few words: 'epoch 3/10', or a staged run's stage ('t-SNE: layout, 40%')."""
        if self.derived:
            stage = self.stage or {"stage": "starting", "fraction": 0.0}
            return f"{stage['stage']}, {stage['fraction']:.0%}"
        return f"epoch {self.epoch}/{self.total_epochs}"

    @property
    def total_epochs(self) -> int:
        return self.spec.epochs * (self.repeats or 1)

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def on_cluster(self) -> bool:
        return self.cluster_job is not None

    def fraction_done(self) -> float:
        if self.status == RunStatus.FINISHED:
            return 1.0
        if self.stage is not None:
            return min(max(float(self.stage["fraction"]), 0.0), 1.0)
        if not self.steps_per_epoch:
            return 0.0
        done = (max(self.epoch - 1, 0) + self.step / self.steps_per_epoch) / self.total_epochs
        return min(max(done, 0.0), 1.0)

    def eta_s(self) -> float | None:
        """Seconds left at the current speed (None before the first update)."""
        if not self.samples_per_s or not self.steps_per_epoch:
            return None
        samples_left = (1 - self.fraction_done()) * self.total_epochs * self.steps_per_epoch * self.spec.batch_size
        return samples_left / self.samples_per_s

    def summary(self) -> dict:
        """The fields the CLI and the leaderboard print (plain strings, ready for JSON)."""
        return {
            "run_id": self.id, "name": self.name, "status": str(self.status), "params": self.params,
            "test_loss": self.test_loss, "test_acc": self.test_acc, "train_s": self.train_s,
            "samples_per_s": self.samples_per_s, "best_val_acc": self.best_val_acc,
            "cv_mean": self.cv_mean, "cv_std": self.cv_std, "seeds_mean": self.seeds_mean, "seeds_std": self.seeds_std,
            "kind": str(self.kind), "parent_id": self.parent_id, "scores": self.scores, "owner": self.owner_name,
            "backend": self.backend, "device": self.device,
        }

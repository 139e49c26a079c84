"""How long a training takes on this machine: measured by the runs it finished, or estimated from their speed.

A time measured on another CPU can be several times too short on a machine without that CPU's
bfloat16 instructions (docs/precision.md), so every time the app shows comes from the runs in the
store that trained on this device:

- measured: finished runs of the same workload (the same layers, batch size, augmentation,
  precision and backend) trained here; their median speed in samples/s gives the time for the
  spec's images and epochs, and their median start-up and scoring time is added;
- estimated: no run of that workload yet, but runs of others of its family (the same backend and
  precision, conv blocks or not, augmentation or not) with at least two different costs: each
  image's training time is fitted as a fixed cost per step shared by the batch plus a cost per
  training FLOP, and read off for the spec;
- otherwise nothing is claimed: "not measured on this machine yet".

Pure Python, no Keras: the pages ask as they draw.
"""

import functools
import statistics
from dataclasses import dataclass

from fmnist.backends import default_setting, mixed_precision_for, resolve
from fmnist.machine import cpu_name
from fmnist.models import ModelSpec, training_flops_per_sample
from fmnist.runs import Run, RunKind, RunStatus

ALL_TRAINING_IMAGES = 60000
# Runs whose speed counts: a finished training, and a search's finished trials (trained in the
# search's process, so they say nothing of start-up).
SPEED_KINDS = (RunKind.TRAIN, RunKind.TRIAL)


@dataclass(frozen=True)
class TimeEstimate:
    """seconds: from the run's start to its end (training, plus start-up and scoring where known);
    None when nothing on this machine says. measured: runs of this very workload gave it; runs:
    how many runs it rests on."""
    seconds: float | None
    measured: bool = False
    runs: int = 0

    def text(self) -> str:
        """How a label says it: '1 min 25 s here (median of 3 runs)', '≈ 2 min 10 s here (estimated from 4 runs)'."""
        if self.seconds is None:
            return "time not measured on this machine yet"
        if self.measured:
            return f"{duration_text(self.seconds)} here ({'median of ' if self.runs > 1 else ''}{plural(self.runs, 'run')})"
        return f"≈ {duration_text(self.seconds)} here (estimated from {plural(self.runs, 'run')})"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration_text(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def workload(spec: ModelSpec) -> tuple:
    """What sets the speed of a spec's training on this machine: its layers, batch size, augmentation
    and precision as this machine trains it; not its epochs, learning rate, seed or validation split."""
    return spec.conv, spec.layers, spec.augment, spec.batch_size, mixed_precision_for(spec)


@functools.lru_cache(maxsize=4096)  # the Train page asks for every run in the store on every rerun
def flops_per_image(spec: ModelSpec) -> int:
    return training_flops_per_sample(spec)


def family(spec: ModelSpec) -> tuple:
    """Workloads whose speeds one fit may compare: conv or dense, augmented or not, and the precision."""
    return bool(spec.conv), spec.augment, mixed_precision_for(spec)


def trained_samples(spec: ModelSpec, images: int | None) -> int:
    """The images a training of the spec steps through: all its epochs of the images left after validation."""
    return round((images or ALL_TRAINING_IMAGES) * (1 - spec.val_split)) * spec.epochs


@dataclass(frozen=True)
class Speed:
    """What one finished run measured of this machine: on which backend, for which workload, how fast,
    and (a training run, which starts a process of its own) how long it spent outside its training:
    imports, the dataset, scoring the test set and saving the model."""
    backend: str
    workload: tuple
    family: tuple
    batch_size: int
    flops: int
    samples_per_s: float
    start_up_s: float | None


def speeds_on(runs: list[Run], device: str) -> list[Speed]:
    """The speeds of the runs that finished on `device` (a CPU's model name, or a GPU's) with their
    speed recorded: read once, asked of for every spec a page labels."""
    speeds = []
    for run in runs:
        if not (run.kind in SPEED_KINDS and run.status == RunStatus.FINISHED and run.device == device
                and run.backend and run.samples_per_s and run.train_s):
            continue
        start_up = None
        if run.kind == RunKind.TRAIN and run.started_at and run.ended_at:
            start_up = run.ended_at - run.started_at - run.train_s
        speeds.append(Speed(run.backend, workload(run.spec), family(run.spec), run.spec.batch_size, flops_per_image(run.spec),
                            run.samples_per_s, start_up if start_up is not None and start_up >= 0 else None))
    return speeds


def fit_costs(points: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """Non-negative (per_step, per_flop) seconds that best give each point's seconds per image from
    its (1 / batch size, training FLOPs per image, seconds per image), each point weighted by its
    own size so that every run counts by its relative error. None without two different points."""
    if len({(x, y) for x, y, _ in points}) < 2:
        return None
    u = [x / t for x, _, t in points]
    v = [y / t for _, y, t in points]
    uu, vv, uv = sum(a * a for a in u), sum(b * b for b in v), sum(a * b for a, b in zip(u, v, strict=True))
    su, sv = sum(u), sum(v)

    def residual(a: float, b: float) -> float:
        return sum((a * ui + b * vi - 1) ** 2 for ui, vi in zip(u, v, strict=True))

    candidates = [(su / uu, 0.0), (0.0, sv / vv)]  # one cost alone: the fit when the pair would go negative
    det = uu * vv - uv * uv
    if det > 1e-12 * uu * vv:
        per_step, per_flop = (su * vv - sv * uv) / det, (sv * uu - su * uv) / det
        if per_step >= 0 and per_flop >= 0:
            candidates.append((per_step, per_flop))
    return min(candidates, key=lambda costs: residual(*costs))


def training_time(spec: ModelSpec, speeds: list[Speed], backend: str, images: int | None = None) -> TimeEstimate:
    """How long training the spec on `images` (all 60,000 when None) takes on `backend` of the
    machine the speeds were measured on (speeds_on): measured from the runs of its workload, else
    estimated from its family's runs, else unknown (see the module's docstring)."""
    speeds = [speed for speed in speeds if speed.backend == backend]
    samples = trained_samples(spec, images)
    start_ups = [speed.start_up_s for speed in speeds if speed.start_up_s is not None]
    extra = statistics.median(start_ups) if start_ups else 0.0
    target = workload(spec)
    same = [speed for speed in speeds if speed.workload == target]
    if same:
        return TimeEstimate(samples / statistics.median(speed.samples_per_s for speed in same) + extra, measured=True, runs=len(same))
    kin = [speed for speed in speeds if speed.family == family(spec)]
    costs = fit_costs([(1 / speed.batch_size, speed.flops, 1 / speed.samples_per_s) for speed in kin])
    if costs is None:
        return TimeEstimate(None)
    per_step, per_flop = costs
    seconds_per_image = per_step / spec.batch_size + per_flop * flops_per_image(spec)
    return TimeEstimate(samples * seconds_per_image + extra, measured=False, runs=len(kin))


def speeds_here(runs: list[Run]) -> list[Speed]:
    """The speeds measured on this machine's CPU."""
    return speeds_on(runs, cpu_name())


def time_here(spec: ModelSpec, speeds: list[Speed], backend_setting: str | None = None, images: int | None = None) -> TimeEstimate:
    """training_time on the backend the setting (by default FMNIST_BACKEND's, else auto) picks for
    the spec, as a run started now would train."""
    if backend_setting is None:
        try:
            backend_setting = default_setting()
        except ValueError:  # the page that starts runs says what is wrong with the variable
            backend_setting = "auto"
    return training_time(spec, speeds, resolve(spec, backend_setting), images)

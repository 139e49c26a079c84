"""What projections and exports share: work on a trained run's model (the run's parent), done in
stages rather than epochs, its files kept with that run. Such runs wait in a queue of their own
(fmnist.runs.DERIVED_QUEUE: they neither wait behind trainings nor count towards a person's limit on
runs), in a process on this machine, on TensorFlow; a Stop ends one at its next stage, keeping
nothing of it."""

import time
import traceback

from fmnist.export_formats import export_problem
from fmnist.jobs.base import JobKind
from fmnist.runs import DERIVED_QUEUE, Run, RunKind, RunStatus


class Stopped(Exception):
    """Someone pressed Stop: the work ends at its next stage."""


class Derived(JobKind):
    queue = DERIVED_QUEUE
    # Its files are its parent's, made where the app is (a cluster's nodes need not have openTSNE or the converters).
    local_only = True
    warm = False  # the warm trainers wait for trainings
    # Failures whose message says it all; any other is recorded with its type, and its traceback goes to the run's log.
    known_errors: tuple[type[Exception], ...] = ()

    def name(self, parent_id: int, settings: dict) -> str:
        """The run's name, from the run it works on and its settings."""
        raise NotImplementedError

    def work(self, store, run: Run, dataset, report) -> dict:
        """The work itself, in this process: report(stage, fraction) as it goes (which raises Stopped once
        a stop is asked for); returns what goes in the run's result."""
        raise NotImplementedError

    def problem(self, store, parent_id: int) -> str | None:
        """Why run parent_id has no model to work on (found without loading Keras); None when it has one."""
        parent = store.get(parent_id)
        problem = export_problem(store, parent, parent_id)
        if problem is None and parent.kind != RunKind.TRAIN:
            problem = f"run {parent_id} is a {parent.kind} job, which keeps no model of its own"
        return problem

    def create(self, store, parent_id: int, settings: dict | None = None, pid: int | None = None, pid_started: str | None = None,
               **owner) -> int:
        """A queued run of this kind on parent_id's model; ValueError saying why that run has no model to work on."""
        problem = self.problem(store, parent_id)
        if problem:
            raise ValueError(problem)
        parent = store.get(parent_id)
        settings = dict(settings or {})
        return store.create_run(parent.spec, name=self.name(parent_id, settings), train_limit=parent.train_limit, pid=pid,
                                pid_started=pid_started, kind=self.kind, parent_id=parent_id, queue=self.queue, settings=settings,
                                backend_setting="tensorflow", **owner)

    def active_for(self, store, parent_id: int, settings: dict | None = None) -> Run | None:
        """The run of this kind on parent_id with these settings that is queued or running, if any."""
        return next((child for child in store.children(parent_id) if child.kind == self.kind and child.active
                     and all(child.settings.get(key) == value for key, value in (settings or {}).items())), None)

    def backend_for(self, run: Run) -> str:
        return "tensorflow"  # the converters and the Inside probes work from TensorFlow graphs, whichever backend trained the model

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        def report(stage: str, fraction: float) -> None:
            if store.record_stage(run.id, stage, fraction):
                raise Stopped
            if progress is not None and hasattr(progress, "stage"):
                progress.stage(stage, fraction)

        start = time.perf_counter()
        try:
            report("starting", 0.0)
            if dataset is None:
                from fmnist.data import load_dataset

                dataset = load_dataset()
            result = self.work(store, run, dataset, report)
        except Stopped:
            store.finish(run.id, RunStatus.STOPPED, train_s=time.perf_counter() - start)
        except Exception as e:  # recorded for the pages and the command line, which show it
            if not isinstance(e, self.known_errors):
                traceback.print_exc()
            error = str(e) if isinstance(e, self.known_errors) else f"{type(e).__name__}: {e}"
            store.finish(run.id, RunStatus.FAILED, error=error, train_s=time.perf_counter() - start)
        else:
            store.set_result(run.id, {**result, "stage": {"stage": "done", "fraction": 1.0}})
            store.finish(run.id, RunStatus.FINISHED, train_s=time.perf_counter() - start)
        return store.get(run.id).summary()

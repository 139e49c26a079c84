"""What cross-validation and seed jobs share: a finished training's spec and settings trained again
`repeats` times, each part scored, the scores' mean and spread kept on the job and on the run it
repeats (fmnist.training.run_job trains the parts)."""

from fmnist.jobs.base import JobKind
from fmnist.runs import Run, RunKind


class Repeat(JobKind):
    repeats_range: tuple[int, int]
    repeats_word: str  # what a repeat is called in messages: folds, seeds
    name_template: str  # the job's name, from its repeats (k) and the run it repeats (id)

    def create(self, store, run_id: int, repeats: int, pid: int | None = None, pid_started: str | None = None, **owner) -> int:
        """A queued job on run_id's spec and settings; ValueError for no such training or repeats out of range."""
        run = store.get(run_id)
        if run is None or run.kind != RunKind.TRAIN:
            raise ValueError(f"no run {run_id} to repeat")
        low, high = self.repeats_range
        if not low <= repeats <= high:
            raise ValueError(f"{self.repeats_word}: from {low} to {high}, got {repeats}")
        # The backend that trained the run, so that the job's scores measure the same training.
        return store.create_run(run.spec, name=self.name_template.format(k=repeats, id=run_id), train_limit=run.train_limit,
                                pid=pid, pid_started=pid_started, kind=self.kind, parent_id=run_id, repeats=repeats,
                                backend_setting=run.backend or run.backend_setting or "auto", **owner)

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        from fmnist.training import run_job

        return run_job(store, run.id, dataset=dataset, progress=progress)

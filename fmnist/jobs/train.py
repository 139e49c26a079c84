"""One model, trained on the training images and scored on the test set: the app's main run kind."""

from fmnist.jobs.base import JobKind
from fmnist.models import ModelSpec
from fmnist.runs import Run, RunKind


class Train(JobKind):
    kind = RunKind.TRAIN

    def create(self, store, spec: ModelSpec, name: str | None = None, train_limit: int | None = None, backend_setting: str = "auto",
               pid: int | None = None, pid_started: str | None = None, **owner) -> int:
        """A queued training of spec on the first train_limit images (all: None). owner: fmnist.worker.owner_fields."""
        return store.create_run(spec, name=name, train_limit=train_limit, pid=pid, pid_started=pid_started,
                                backend_setting=backend_setting, **owner)

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        from fmnist.training import train_run

        return train_run(store, run.id, dataset=dataset, progress=progress)

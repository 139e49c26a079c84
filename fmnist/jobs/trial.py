"""One configuration a search tried, scored on validation accuracy only (no test set, no model kept).
A search's process creates and trains its trials itself; a trial is a process of its own only as a
Ray job, reporting its epochs to the search's study (fmnist.search.run_on_cluster)."""

from fmnist.jobs.base import JobKind
from fmnist.runs import Run, RunKind


class Trial(JobKind):
    kind = RunKind.TRIAL

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        from fmnist.search import train_submitted_trial

        return train_submitted_trial(store, run.id)

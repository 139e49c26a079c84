"""What every run kind is, in one small protocol: how a run of the kind is created (checked), which
queue it waits in, which Keras backend trains it, what its own process does, and what it shows.

Each kind is a module beside this one, named as its fmnist.runs.RunKind member (train, cv, seeds,
search, trial, projection, export), which is the registry fmnist.jobs reads. A kind imports the
Keras side only inside `execute`, which runs in the run's own process (`python -m fmnist.jobs
RUN_ID`), so creating, listing or stopping runs stays light.
"""

from fmnist.backends import resolve
from fmnist.runs import Run, RunKind


class JobKind:
    kind: RunKind
    # Which queue its runs wait in (fmnist.store.RunStore.claim_slot): trainings share one, limited
    # by FMNIST_MAX_PARALLEL; a search only asks Optuna and tells it, so searches have their own.
    queue = "training"
    # Trains in a process on this machine even when runs go to a Ray cluster (a search: its trials go there).
    local_only = False
    # May be handed to a warm trainer of its backend (fmnist.warm), which loaded Keras and the dataset before it was queued.
    warm = True

    def backend_for(self, run: Run) -> str:
        """The Keras backend its process starts (fmnist.backends): the run's setting for its spec."""
        return resolve(run.spec, run.backend_setting)

    def execute(self, store, run: Run, progress=None, on_trial=None, dataset=None) -> dict:
        """Do the run's work in this process (Keras started on backend_for's backend, the run claimed
        from its queue); record how it ended in the store, never raise for a failed training. Returns
        the summary the process prints. progress: how the caller shows it (fmnist.console.ProgressBar:
        a training calls it with its points, a kind that works in stages its `stage`). dataset: the
        loaded dataset when the process has it already (a warm trainer), else the kind loads it."""
        raise NotImplementedError

    def describe(self, run: Run) -> dict:
        """What the CLI prints and the pages show of a run of this kind (plain values, ready for JSON)."""
        return run.summary()

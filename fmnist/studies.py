"""Searches' studies: where Optuna keeps them, and what a search found so far.

With the run store in SQLite (FMNIST_DB unset), the studies live in Optuna's journal-file storage
in $FMNIST_HOME: an append-only log with a file lock, safe for several processes at once (Optuna
documents that SQLite storage is not safe for concurrent trial processes), from which a search
killed half-way resumes. With the run store on PostgreSQL, in the same database (Optuna's
RDBStorage, its own tables beside the store's), where trials on other machines reach them. No
Keras here: the Search page reads studies; fmnist.search runs them.
"""

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from fmnist.runs import RunKind, RunStatus
from fmnist.search_space import SearchSpace
from fmnist.store import RunStore

# The median pruner compares a trial with the finished ones once this many have finished, at every
# epoch from the first (steps are epochs counted from 1; Optuna skips steps below WARMUP_EPOCHS).
# What that saves and costs is measured in docs/performance.md, "The search".
STARTUP_TRIALS = 4
WARMUP_EPOCHS = 1
optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage(store: RunStore) -> BaseStorage:
    if store.database.is_sqlite:
        return JournalStorage(JournalFileBackend(str(store.home / "searches.journal")))
    if store.study_storage is None:  # one per store: RDBStorage checks its tables when it is made
        store.study_storage = RDBStorage(store.database.url_text(), engine_kwargs={"pool_pre_ping": True})
    return store.study_storage


def study_name(search_id: int) -> str:
    return f"search-{search_id}"


def open_study(store: RunStore, search_id: int, space: SearchSpace, prune: bool = True) -> optuna.Study:
    """The search's study, created the first time (resumed later): TPE seeded with the space's seed,
    aware of trials still running (constant liar), and the median pruner (prune=False: none, for
    the bench's comparison)."""
    pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS)
    if not prune:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=study_name(search_id), storage=storage(store), direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=space.seed, constant_liar=True), pruner=pruner,
    )


def load_study(store: RunStore, search_id: int) -> optuna.Study | None:
    """A search's study for reading (the Search page), or None before its first trial."""
    try:
        return optuna.load_study(study_name=study_name(search_id), storage=storage(store))
    except KeyError:
        return None


def fail_stale_trials(study: optuna.Study) -> None:
    """Trials that were running when a search's process died never report back: close them as failed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


# Trials that count against a search's budget: those that said something about their settings.
# One killed or stopped half-way (interrupted, stopped, cancelled) does not.
SPENT = (RunStatus.FINISHED, RunStatus.PRUNED, RunStatus.FAILED)


def budget_left(space: SearchSpace, store: RunStore, search_id: int, elapsed_s: float) -> bool:
    """Whether another trial may start: the trials that ended or are under way leave room, and time is left."""
    done = sum(run.status in SPENT or run.active for run in store.children(search_id) if run.kind == RunKind.TRIAL)
    if space.trials is not None and done >= space.trials:
        return False
    return space.minutes is None or elapsed_s < space.minutes * 60


def best_value(study: optuna.Study) -> float | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.value for t in complete), default=None)


def best_trial_run(store: RunStore, search_id: int):
    """The search's best trial as a run (highest best validation accuracy among finished trials), or None."""
    trials = [run for run in store.children(search_id) if run.kind == RunKind.TRIAL]
    finished = [run for run in trials if run.status == RunStatus.FINISHED and run.best_val_acc is not None]
    return max(finished, key=lambda run: run.best_val_acc, default=None)


def search_summary(store: RunStore, search_id: int) -> dict:
    """What the CLI prints at the end: search_id, trials, pruned, best_val_acc, best_spec."""
    search = store.get(search_id)
    trials = [run for run in store.children(search_id) if run.kind == RunKind.TRIAL]
    best = best_trial_run(store, search_id)
    return {
        "search_id": search_id, "status": str(search.status), "trials": len(trials),
        "pruned": sum(run.status == RunStatus.PRUNED for run in trials),
        "failed": sum(run.status == RunStatus.FAILED for run in trials),
        "best_val_acc": best.best_val_acc if best else None, "best_trial_run_id": best.id if best else None,
        "best_spec": best.spec.to_dict() if best else None, "seconds": search.train_s, "error": search.error,
    }


def delete_search(store: RunStore, search_id: int) -> None:
    """A search with its trials, their folders and its study (RuntimeError while it runs)."""
    store.delete(search_id)
    try:
        optuna.delete_study(study_name=study_name(search_id), storage=storage(store))
    except KeyError:  # stopped before its first trial: no study
        pass


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's importance of each setting for the validation accuracy (empty until two trials finished)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every finished trial scored the same
        return {}


def parallel_coordinates(study: optuna.Study):
    """Settings -> validation accuracy, one line per finished trial (Optuna's own Plotly figure, restyled)."""
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return None
    fig = optuna.visualization.plot_parallel_coordinate(study, target_name="val accuracy")
    fig.update_layout(title="Settings → validation accuracy (finished trials)", height=360,
                      margin=dict(l=60, r=30, t=60, b=20), paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig

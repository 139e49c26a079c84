"""A search over stacks: Optuna proposes, the engine trains, the validation curve decides.

A search is a run of kind `search` in the run store, with its space (fmnist.search_space);
its process (`python -m fmnist.jobs RUN_ID`, like every run's) asks Optuna's TPE sampler for
a configuration, trains it as an ordinary run of kind `trial` that queues for a training slot
like any run, reports each epoch's validation accuracy to the median pruner, and tells the study
the trial's best validation accuracy (fmnist.studies keeps the study). Trials never see the
test set.
"""

import logging
import time

import optuna
from optuna.trial import TrialState

from fmnist import cluster
from fmnist.data import Dataset, load_dataset
from fmnist.runs import RunKind, RunStatus
from fmnist.search_space import SearchSpace, suggest
from fmnist.store import RunStore
from fmnist.studies import best_value, budget_left, fail_stale_trials, open_study, search_summary
from fmnist.training import train_trial
from fmnist.worker import POLL_S, max_parallel, reap_dead_runs, start_process, start_search_helper, wait_for_slot

# Every trial builds a new model, so TensorFlow traces its step anew each time, as it should:
# its warning about retracing only clutters a search's log.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def trial_loop(store: RunStore, search_id: int, study, space: SearchSpace, dataset: Dataset, elapsed, on_trial=None) -> None:
    """Ask, train, tell: until the budget is spent (trials ended or under way, or elapsed() seconds),
    someone stops the search, or it is no longer running. Several processes may run it at once."""
    owner = {"owner": store.get(search_id).owner, "owner_name": store.get(search_id).owner_name}
    while True:
        search = store.get(search_id)
        if search.status != RunStatus.RUNNING or search.stop_requested or not budget_left(space, store, search_id, elapsed()):
            return
        trial = study.ask()
        spec = suggest(space, trial)
        run_id = store.create_run(spec, name=f"trial {trial.number + 1} of #{search_id}", train_limit=space.images,
                                  kind=RunKind.TRIAL, parent_id=search_id, **owner)
        trial.set_user_attr("run_id", run_id)
        if not wait_for_slot(store, run_id):  # cancelled while it waited: the search was stopped
            study.tell(trial, state=TrialState.FAIL)
            return
        status, best = train_trial(store, run_id, trial, dataset)
        tell(store, search_id, study, trial, status, best, on_trial)


def tell(store: RunStore, search_id: int, study, trial, status: RunStatus, best: float | None, on_trial=None) -> None:
    """A trial's end, told to the study: its score, pruned, or (failed, stopped half-way) no result to compare."""
    if status == RunStatus.FINISHED and best is not None:
        study.tell(trial, best)
    elif status == RunStatus.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    store.update_search(search_id, best_val_acc=best_value(study))
    if on_trial:
        on_trial(store.get(trial.user_attrs["run_id"]), best)


def run_on_cluster(store: RunStore, search_id: int, study, space: SearchSpace, head: "cluster.Cluster", elapsed, on_trial=None) -> None:
    """Ask, submit, tell: each trial a Ray job of its own (`python -m fmnist.jobs RUN_ID`, which
    reports its epochs to the study and is pruned there), as many in flight as the cluster trains at
    once, until the budget is spent or someone stops the search; then wait for those in flight."""
    search = store.get(search_id)
    owner = {"owner": search.owner, "owner_name": search.owner_name}
    at_once, in_flight = head.runs_at_once(), {}
    while True:
        reap_dead_runs(store)  # a trial whose job died ends as interrupted, and is told as failed
        for run_id, trial in list(in_flight.items()):
            run = store.get(run_id)
            if not run.active:
                del in_flight[run_id]
                tell(store, search_id, study, trial, run.status, run.best_val_acc, on_trial)
        search = store.get(search_id)
        going_on = search.status == RunStatus.RUNNING and not search.stop_requested
        while going_on and len(in_flight) < at_once and budget_left(space, store, search_id, elapsed()):
            trial = study.ask()
            run_id = store.create_run(suggest(space, trial), name=f"trial {trial.number + 1} of #{search_id}", train_limit=space.images,
                                      kind=RunKind.TRIAL, parent_id=search_id, **owner)
            trial.set_user_attr("run_id", run_id)
            in_flight[run_id] = trial
            start_process(store, run_id)
        if not in_flight:
            return
        time.sleep(POLL_S)


def train_submitted_trial(store: RunStore, run_id: int) -> dict:
    """A trial's own Ray job: train it, reporting each epoch to its study (which may prune it); the
    search's process tells the study how it ended. Returns the trial's summary."""
    run = store.get(run_id)
    search = store.get(run.parent_id)
    study = open_study(store, search.id, SearchSpace.from_dict(search.space))
    [asked] = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get("run_id") == run_id]
    train_trial(store, run_id, optuna.trial.Trial(study, asked._trial_id), load_dataset())
    return store.get(run_id).summary()


def run_search(store: RunStore, search_id: int, dataset: Dataset | None = None, on_trial=None, prune: bool = True) -> dict:
    """Run a search the queue has started until its budget is spent or someone stops it, with as
    many trials at once as the run queue allows (FMNIST_MAX_PARALLEL: a helper process for each
    more), or with FMNIST_RAY_ADDRESS set as many as the Ray cluster trains at once (run_on_cluster).
    on_trial(run, value), if given, hears this process's trials as they end. Returns the search's
    summary."""
    search = store.get(search_id)
    started, before = time.monotonic(), search.train_s or 0.0

    def elapsed() -> float:
        return before + time.monotonic() - started

    helpers = []
    try:
        space = SearchSpace.from_dict(search.space)
        study = open_study(store, search_id, space, prune=prune)
        fail_stale_trials(study)
        head = cluster.current()
        if head is not None:
            run_on_cluster(store, search_id, study, space, head, elapsed, on_trial)
        else:
            dataset = dataset or load_dataset()
            helpers = [start_search_helper(store, search_id) for _ in range(max_parallel() - 1)]
            trial_loop(store, search_id, study, space, dataset, elapsed, on_trial)
            for helper in helpers:
                helper.wait()
        status = RunStatus.STOPPED if store.stop_requested(search_id) else RunStatus.FINISHED
        store.finish(search_id, status, train_s=elapsed())
    except Exception as e:  # the search records why it failed; its finished trials stay
        store.request_stop(search_id)  # its helpers' trials too
        store.finish(search_id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}", train_s=elapsed())
    return search_summary(store, search_id)


def help_search(store: RunStore, search_id: int) -> None:
    """A helper process's part: the same loop on the same study, while the search runs."""
    search = store.get(search_id)
    space = SearchSpace.from_dict(search.space)
    started, before = time.monotonic(), search.train_s or 0.0
    trial_loop(store, search_id, open_study(store, search_id, space), space, load_dataset(),
               lambda: before + time.monotonic() - started)

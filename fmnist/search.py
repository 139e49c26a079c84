"""A search over stacks: Optuna proposes, the engine trains, the validation curve decides.

A search is a run of kind `search` in the run store, with its space (fmnist.search_space);
its process (`python -m fmnist train --run-id N`, like every run's) asks Optuna's TPE sampler for
a configuration, trains it as an ordinary run of kind `trial` that queues for a training slot
like any run, reports each epoch's validation accuracy to the median pruner, and tells the study
the trial's best validation accuracy (fmnist.studies keeps the study). Trials never see the
test set.
"""

import logging
import time

from optuna.trial import TrialState

from fmnist.data import Dataset, load_dataset
from fmnist.runs import RunKind, RunStatus
from fmnist.search_space import SearchSpace, suggest
from fmnist.store import RunStore
from fmnist.studies import best_value, budget_left, fail_stale_trials, open_study, search_summary
from fmnist.training import train_trial
from fmnist.worker import max_parallel, start_search_helper, wait_for_slot

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
        if status == RunStatus.FINISHED and best is not None:
            study.tell(trial, best)
        elif status == RunStatus.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        else:  # failed, or stopped half-way: not a result to compare
            study.tell(trial, state=TrialState.FAIL)
        store.update_search(search_id, best_val_acc=best_value(study))
        if on_trial:
            on_trial(store.get(run_id), best)


def run_search(store: RunStore, search_id: int, dataset: Dataset | None = None, on_trial=None, prune: bool = True) -> dict:
    """Run a search the queue has started until its budget is spent or someone stops it, with as
    many trials at once as the run queue allows (FMNIST_MAX_PARALLEL: a helper process for each
    more). on_trial(run, value), if given, hears this process's trials as they end. Returns the
    search's summary."""
    search = store.get(search_id)
    started, before = time.monotonic(), search.train_s or 0.0

    def elapsed() -> float:
        return before + time.monotonic() - started

    helpers = []
    try:
        space = SearchSpace.from_dict(search.space)
        study = open_study(store, search_id, space, prune=prune)
        fail_stale_trials(study)
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

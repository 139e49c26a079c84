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
from fmnist.worker import wait_for_slot

# Every trial builds a new model, so TensorFlow traces its step anew each time, as it should:
# its warning about retracing only clutters a search's log.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def run_search(store: RunStore, search_id: int, dataset: Dataset | None = None, on_trial=None, prune: bool = True) -> dict:
    """Run a search the queue has started until its budget is spent or someone stops it.
    on_trial(run, value), if given, hears each trial as it ends. Returns the search's summary."""
    search = store.get(search_id)
    started, before = time.monotonic(), search.train_s or 0.0
    try:
        space = SearchSpace.from_dict(search.space)
        study = open_study(store, search_id, space, prune=prune)
        fail_stale_trials(study)
        dataset = dataset or load_dataset()
        owner = {"owner": search.owner, "owner_name": search.owner_name}
        while not store.stop_requested(search_id) and budget_left(space, store, search_id, before + time.monotonic() - started):
            trial = study.ask()
            spec = suggest(space, trial)
            run_id = store.create_run(spec, name=f"trial {trial.number + 1} of #{search_id}", train_limit=space.images,
                                      kind=RunKind.TRIAL, parent_id=search_id, **owner)
            trial.set_user_attr("run_id", run_id)
            if not wait_for_slot(store, run_id):  # cancelled while it waited: the search was stopped
                study.tell(trial, state=TrialState.FAIL)
                break
            status, best = train_trial(store, run_id, trial, dataset)
            if status == RunStatus.FINISHED and best is not None:
                study.tell(trial, best)
            elif status == RunStatus.PRUNED:
                study.tell(trial, state=TrialState.PRUNED)
            else:  # failed, or stopped half-way: not a result to compare
                study.tell(trial, state=TrialState.FAIL)
            store.update_search(search_id, elapsed_s=before + time.monotonic() - started, best_val_acc=best_value(study))
            if on_trial:
                on_trial(store.get(run_id), best)
        status = RunStatus.STOPPED if store.stop_requested(search_id) else RunStatus.FINISHED
        store.finish(search_id, status, train_s=before + time.monotonic() - started)
    except Exception as e:  # the search records why it failed; its finished trials stay
        store.finish(search_id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}", train_s=before + time.monotonic() - started)
    return search_summary(store, search_id)

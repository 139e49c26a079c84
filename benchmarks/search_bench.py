"""`python -m fmnist search --bench`: what the default search finds, what pruning saves, and what it costs.

1. The search as a person runs it (the default space and budget, pruned), in a fresh store.
2. Its best trial's settings retrained on all 60,000 images for 20 epochs, then scored once on
   the 10,000 test images.
3. The same trials (the same settings, in the same order) trained again without pruning: the
   trial-epochs pruning saved, and how far the best validation accuracy moved.
4. The overhead between trials: from one trial's end to the next trial's first results.
It prints figures; nothing here is asserted.
"""

import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fmnist import jobs
from fmnist.data import load_dataset
from fmnist.machine import cpu_name
from fmnist.runs import RunKind, RunStatus
from fmnist.search import run_search
from fmnist.search_space import SearchSpace
from fmnist.store import RunStore
from fmnist.studies import best_trial_run, load_study, open_study
from fmnist.training import train_run
from fmnist.worker import try_start

BEST_EPOCHS = 20


def trial_epochs(store: RunStore, search_id: int) -> int:
    return sum(run.epoch for run in store.children(search_id) if run.kind == RunKind.TRIAL)


def overheads(store: RunStore, search_id: int) -> list[float]:
    """Seconds from each trial's end to the next one's first results (its first batches trained)."""
    study = load_study(store, search_id)
    first = {t.user_attrs.get("run_id"): t.user_attrs.get("first_batch_at") for t in study.trials}
    trials = [run for run in store.children(search_id) if run.kind == RunKind.TRIAL]
    return [first[b.id] - a.ended_at for a, b in zip(trials, trials[1:]) if first.get(b.id) and a.ended_at]


def searched(store: RunStore, space: SearchSpace, dataset, name: str, prune: bool = True, enqueue=()) -> int:
    search_id = jobs.SEARCH.create(store, space, name=name)
    try_start(store, search_id, max_parallel=1)
    study = open_study(store, search_id, space, prune=prune)
    for params in enqueue:
        study.enqueue_trial(params)
    started = time.perf_counter()
    run_search(store, search_id, dataset, prune=prune,
               on_trial=lambda run, value: print(f"  {name}: {run.name} {run.status} after {run.epoch} epochs, "
                                                 f"{'-' if value is None else f'{value:.4f}'} ({time.perf_counter() - started:.0f} s)",
                                                 flush=True))
    return search_id


def run_search_bench(args) -> int:
    space = SearchSpace() if args.minutes is None else replace(SearchSpace(), minutes=args.minutes)
    dataset = load_dataset()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        print(f"{cpu_name()}; the default search: {space.trials} trials or {space.minutes:g} minutes, "
              f"{space.epochs} epochs on {space.images:,} images each", flush=True)
        pruned_id = searched(store, space, dataset, "pruned")
        pruned = store.get(pruned_id)
        best = best_trial_run(store, pruned_id)

        final_id = store.create_run(replace(best.spec, epochs=BEST_EPOCHS), name="best of the search")
        try_start(store, final_id, max_parallel=1)
        final = train_run(store, final_id, dataset)

        study = load_study(store, pruned_id)
        same_trials = [t.params for t in study.trials if t.state.is_finished()]
        unpruned_space = replace(space, trials=len(same_trials), minutes=None)
        unpruned_id = searched(store, unpruned_space, dataset, "unpruned", prune=False, enqueue=same_trials)
        unpruned = store.get(unpruned_id)

        gaps = overheads(store, pruned_id)
        epochs_pruned, epochs_full = trial_epochs(store, pruned_id), trial_epochs(store, unpruned_id)
        result = {
            "cpu": cpu_name(), "trials": len(same_trials),
            "pruned_trials": sum(run.status == RunStatus.PRUNED for run in store.children(pruned_id)),
            "search_s": round(pruned.train_s, 1), "best_val_acc": pruned.best_val_acc, "best_spec": best.spec.to_dict(),
            "best_test_acc": final["test_acc"], "best_train_s": round(final["train_s"], 1),
            "trial_epochs_pruned": epochs_pruned, "trial_epochs_unpruned": epochs_full,
            "epochs_saved": round(1 - epochs_pruned / epochs_full, 3) if epochs_full else None,
            "unpruned_best_val_acc": unpruned.best_val_acc,
            "best_val_acc_difference_points": round(100 * (pruned.best_val_acc - unpruned.best_val_acc), 2),
            "overhead_s_median": round(statistics.median(gaps), 2) if gaps else None,
            "overhead_s_max": round(max(gaps), 2) if gaps else None,
        }
    print(json.dumps(result))
    return 0

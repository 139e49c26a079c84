"""Writes tests/data/store_v5/: a run store as the app left it before its migrations moved to
Alembic (store version 5), and what that app read from it (expected.json).

Run it with that version of the app importable (the commit before the schema moved to Alembic):
    PYTHONPATH=<that checkout> python3 tests/data/make_store_v5.py
tests/test_schema.py opens the store with today's code and checks it reads the same.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from fmnist.access import Person
from fmnist.models import dense_spec
from fmnist.search_space import SearchSpace
from fmnist.store import RunStore
from fmnist.worker import create_job, create_search

OUT = Path(__file__).resolve().parent / "store_v5"
RUN_FIELDS = ("id", "name", "status", "kind", "parent_id", "repeats", "scores", "space", "space_json", "cv_mean", "cv_std",
              "seeds_mean", "seeds_std", "test_acc", "test_loss", "best_val_acc", "train_s", "owner", "owner_name", "error",
              "train_limit", "params", "backend_setting")


def write(store: RunStore) -> None:
    ada = Person("class:ada", "Ada", admin=False)
    trained = store.create_run(dense_spec([32], epochs=2), name="trained", train_limit=2000, owner=ada.id, owner_name=ada.name)
    store.record_epoch(trained, 1, {"loss": 0.9, "accuracy": 0.7, "val_loss": 0.8, "val_accuracy": 0.72}, 1.5)
    store.record_epoch(trained, 2, {"loss": 0.6, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.78}, 1.4)
    store.record_progress(trained, 2, 10, 10, 900.0, [(1, 5, 0.95, 0.68), (2, 10, 0.61, 0.79)])
    store.finish(trained, "finished", test_loss=0.65, test_acc=0.77, train_s=3.0)
    first_cv = create_job(store, trained, "cv", 3, owner=ada)
    store.record_scores(first_cv, [0.75, 0.77, 0.76])
    store.finish(first_cv, "finished")
    second_cv = create_job(store, trained, "cv", 2)  # the newer job's mean is the one the run shows
    store.record_scores(second_cv, [0.70, 0.74])
    store.finish(second_cv, "stopped")
    seeds = create_job(store, trained, "seeds", 3)
    store.record_scores(seeds, [0.771, 0.768, 0.779])
    store.finish(seeds, "finished")

    failed = store.create_run(dense_spec([16]), name="failed")
    store.finish(failed, "failed", error="ValueError: out of memory")
    waiting_job = create_job(store, trained, "seeds", 4)  # queued: repeats, no scores yet

    search = create_search(store, SearchSpace(images=2000, epochs=1, trials=3), name="a search")
    for number, (status, score) in enumerate((("finished", 0.81), ("pruned", None))):
        trial = store.create_run(dense_spec([64]), name=f"trial {number + 1} of #{search}", kind="trial", parent_id=search, train_limit=2000)
        store.record_epoch(trial, 1, {"val_accuracy": score or 0.5}, 0.5)
        store.finish(trial, status)
    store.update_search(search, space_json=json.dumps(SearchSpace(images=2000, epochs=1, trials=5).to_dict()), elapsed_s=12.5,
                        best_val_acc=0.81)
    store.request_stop(search)  # a queued search cancelled
    queued_search = create_search(store, SearchSpace(images=1000, epochs=2, trials=2), name="queued search")
    queued = store.create_run(dense_spec([8]), name="queued")

    store.add_person(ada.id, ada.name, "hash-of-ada")
    store.add_sign_in("tab-token", ada.id, ada.name, False)
    return {"queued": [waiting_job, queued_search, queued]}


def expected(store: RunStore, queued: list[int]) -> dict:
    return {
        "runs": [{**{name: getattr(run, name) for name in RUN_FIELDS}, "summary": run.summary()} for run in store.list_runs()],
        "epochs": {run.id: store.epochs(run.id) for run in store.list_runs()},
        "batches": {run.id: store.batches(run.id) for run in store.list_runs()},
        "queue_positions": {run_id: store.queue_position(run_id) for run_id in queued},
        "person": store.person("class:ada"),
        "signed_in": store.signed_in("tab-token"),
    }


if __name__ == "__main__":
    home = Path(tempfile.mkdtemp())
    store = RunStore(home)
    made = write(store)
    found = expected(store, made["queued"])
    store.database.engine.dispose()
    OUT.mkdir(exist_ok=True)
    shutil.copyfile(home / "runs.sqlite", OUT / "runs.sqlite")
    (OUT / "expected.json").write_text(json.dumps(found, indent=1, default=str) + "\n")
    print(f"wrote {OUT} ({len(found['runs'])} runs)", file=sys.stderr)

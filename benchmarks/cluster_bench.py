"""What going through Ray costs and gains: the same short runs on the local queue and as Ray jobs.

`python -m fmnist bench --cluster` launches RUNS runs (128-64, 3 epochs, 20,000 images) through the
app's own launch path (fmnist.services.start_training), first on the local queue, then through the Ray head at
FMNIST_RAY_ADDRESS (each run a job asking FMNIST_RAY_CPUS, default 1), each side in a fresh
FMNIST_HOME on the configured run store. It watches the store: the wall time from the first launch
to the last run's end, and for each run the time from its launch to its first batch's point in the
store (for the runs that did not wait for another: the overhead of starting a run).
docs/performance.md, "The local queue against a local Ray head", has the figures.
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from fmnist.access import Actor
from fmnist.models import dense_spec
from fmnist.runs import ACTIVE
from fmnist.services import start_training
from fmnist.store import RunStore
from fmnist.worker import max_parallel

RUNS = 8
SPEC = dense_spec([128, 64], epochs=3)
IMAGES = 20000


def measure(side: str, slots: int, count: int = RUNS, spec=SPEC, images: int = IMAGES) -> dict:
    """Launch `count` runs and watch them to their end; `slots` runs start at once (the rest wait).
    Also what benchmarks.parallel_bench compares: one training at a time against two."""
    with tempfile.TemporaryDirectory(prefix=f"fmnist-bench-{side.replace(' ', '-')}-") as home:
        store = RunStore(Path(home))
        start = time.time()
        run_ids = [start_training(store, Actor.local(), spec, name=f"bench {side} {i + 1}", train_limit=images) for i in range(count)]
        launched = {run_id: time.time() for run_id in run_ids}
        first_batch = {}
        while True:
            runs = [store.get(run_id) for run_id in run_ids]
            now = time.time()
            for run in runs:
                if run.step > 0 and run.id not in first_batch:
                    first_batch[run.id] = now
            if not any(run.status in ACTIVE for run in runs):
                break
            time.sleep(0.05)
        wall = max(run.ended_at for run in runs) - start
        unqueued = [first_batch[run_id] - launched[run_id] for run_id in run_ids[:slots] if run_id in first_batch]
        return {
            "side": side, "runs": count, "at_once": slots, "wall_s": round(wall, 1),
            "statuses": sorted({str(run.status) for run in runs}),
            "launch_to_first_batch_s": [round(s, 2) for s in unqueued],
            "launch_to_first_batch_median_s": round(statistics.median(unqueued), 2) if unqueued else None,
            "mean_train_s": round(statistics.mean(run.train_s for run in runs if run.train_s), 2),
            "test_acc": round(statistics.mean(run.test_acc for run in runs if run.test_acc), 4),
        }


def main() -> int:
    from fmnist import cluster

    head = cluster.current()
    if head is None:
        print(f"error: set {cluster.ADDRESS_ENV} to a Ray head's dashboard (docs/cluster.md, \"Three setups\")")
        return 2
    address = os.environ.pop(cluster.ADDRESS_ENV)
    try:
        results = [measure("local queue", max_parallel())]
    finally:
        os.environ[cluster.ADDRESS_ENV] = address
    results.append(measure("Ray jobs", head.runs_at_once()))
    for result in results:
        print(json.dumps(result))
    return 0

"""Training processes and the queue between them.

Every run trains in a process of its own (`python -m fmnist train --run-id N`),
so nothing a browser does can kill or freeze it. A queued run's process waits
until it is first in line and fewer than FMNIST_MAX_PARALLEL runs (default 1)
are training.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from fmnist.models import ModelSpec
from fmnist.store import RunStore

POLL_S = 0.5
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def max_parallel() -> int:
    return max(1, int(os.environ.get("FMNIST_MAX_PARALLEL", "1")))


JOB_NAMES = {"cv": "{k}-fold CV of #{id}", "seeds": "{k} seeds of #{id}"}


def launch(store: RunStore, spec: ModelSpec, name: str | None = None, train_limit: int | None = None) -> int:
    """Queue a run and start its own training process; returns the run id."""
    run_id = store.create_run(spec, name=name, train_limit=train_limit)
    start_process(store, run_id)
    return run_id


REPEATS_RANGE = {"cv": (2, 20), "seeds": (1, 20)}


def create_job(store: RunStore, run_id: int, kind: str, repeats: int, pid: int | None = None) -> int:
    """Queue a job on a run's spec and settings: k-fold cross-validation ("cv") or N seeds ("seeds")."""
    run = store.get(run_id)
    if run is None or run.kind != "train":
        raise ValueError(f"no run {run_id} to repeat")
    low, high = REPEATS_RANGE[kind]
    if not low <= repeats <= high:
        raise ValueError(f"{'folds' if kind == 'cv' else 'seeds'}: from {low} to {high}, got {repeats}")
    name = JOB_NAMES[kind].format(k=repeats, id=run_id)
    return store.create_run(run.spec, name=name, train_limit=run.train_limit, pid=pid, kind=kind, parent_id=run_id, repeats=repeats)


def launch_job(store: RunStore, run_id: int, kind: str, repeats: int) -> int:
    job_id = create_job(store, run_id, kind, repeats)
    start_process(store, job_id)
    return job_id


def start_process(store: RunStore, run_id: int) -> None:
    log = open(store.run_dir(run_id) / "train.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "fmnist", "train", "--run-id", str(run_id)],
        cwd=PROJECT_ROOT, env={**os.environ, "FMNIST_HOME": str(store.home)},
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives a Streamlit server restart or a Ctrl-C in its terminal
    )
    log.close()
    store.set_pid(run_id, process.pid)
    # Reap it when it ends, so a long-lived server does not collect zombies.
    threading.Thread(target=process.wait, daemon=True).start()


def wait_for_slot(store: RunStore, run_id: int, on_wait=None) -> bool:
    """Block until the run may start (True) or it was cancelled meanwhile (False)."""
    store.set_pid(run_id, os.getpid())
    while True:
        if store.try_start(run_id, max_parallel()):
            return True
        run = store.get(run_id)
        if run is None or run.status != "queued":
            return False
        if on_wait:
            on_wait(store.queue_position(run_id))
        store.reap_dead_runs()
        time.sleep(POLL_S)

"""A run's own process, and how a run gets one: `python -m fmnist.jobs RUN_ID` here, or the same
command as a Ray job when FMNIST_RAY_ADDRESS names a cluster.

The process waits for its turn in its kind's queue (fmnist.worker.wait_for_slot), starts Keras on
the backend its kind picks, and hands the run to its kind's `execute`. The worker spawns it for the
app; the command line runs the same function in its own process, showing progress as it goes.
"""

import json
import os
import sys
import time

from fmnist import cluster, warm
from fmnist.jobs import kind_of
from fmnist.runs import RunStatus
from fmnist.store import RunStore, open_store
from fmnist.worker import reap_dead_runs, start_process, submit, wait_for_slot


def start(store: RunStore, run_id: int) -> None:
    """Give a queued run its own process: a Ray job with FMNIST_RAY_ADDRESS set (unless its kind stays
    here), else the warm trainer of its backend when one waits and its kind may have it (fmnist.warm), else a
    new local process."""
    run = store.get(run_id)
    kind = kind_of(run)
    # A warm trainer holds Keras and the dataset (about half a GB): only the run next in line gets it. A
    # run further back waits in a light process and loads Keras when its turn comes, so that a class's
    # queue of 30 runs is not 30 loaded processes (docs/performance.md, "Warm trainers").
    next_in_line = store.queue_position(run_id) <= 1
    if (kind.warm and (kind.local_only or cluster.current() is None) and next_in_line
            and warm.hand_over(store, run_id, kind.backend_for(run))):
        return
    start_process(store, run_id, local=kind.local_only)


def missing_gpu(backend: str) -> str | None:
    """In a run's Ray job that asked for a GPU: why it cannot have one, when Keras finds none on its node."""
    from fmnist.backends import LABELS
    from fmnist.keras_start import device_name
    from fmnist.machine import cpu_name

    asked = cluster.in_cluster_job() and cluster.resource_setting(cluster.GPUS_ENV, 0.0) > 0
    if not asked or device_name(backend) != cpu_name():
        return None
    import socket

    return (f"the run asked the cluster for a GPU ({cluster.GPUS_ENV}), but {LABELS[backend]} finds none on its node "
            f"{socket.gethostname()} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): install the "
            f"CUDA builds there (./setup.sh --gpu), or set {cluster.GPUS_ENV}=0 to train on CPUs")


def run_in_this_process(store: RunStore, run_id: int, progress=None, on_wait=None, on_trial=None, dataset=None) -> dict:
    """Wait for the run's turn, then do its kind's work here; returns its summary. progress (a training's
    points), on_wait (its place in the queue) and on_trial (a search's trials as they end) let a
    caller show them; dataset, when this process loaded it already (a warm trainer)."""
    if not wait_for_slot(store, run_id, on_wait=on_wait):
        return store.get(run_id).summary()
    # Keras loads here, once the run may start (listing, stopping and a queued wait stay light), on the
    # backend the run's kind picks: Keras fixes its backend when it is first imported.
    from fmnist.keras_start import start_keras

    run = store.get(run_id)
    kind = kind_of(run)
    missing = missing_gpu(start_keras(kind.backend_for(run)))
    if missing:
        store.finish(run_id, RunStatus.FAILED, error=missing)
        return store.get(run_id).summary()
    return kind.execute(store, run, progress=progress, on_trial=on_trial, dataset=dataset)


def wait_warm(backend: str) -> int:
    """A warm trainer's life: Keras started on backend and the dataset loaded, then blocked on stdin
    until the server writes a run's id (fmnist.warm.hand_over); then that run's process, its output
    in the run's train.log. Ends at once, with nothing done, when stdin closes without an id."""
    from fmnist.data import load_dataset
    from fmnist.keras_start import start_keras

    start_keras(backend)
    import fmnist.training  # noqa: F401  (the engine's imports, paid while waiting)

    dataset = load_dataset()
    print(f"warm trainer ready: {backend}, pid {os.getpid()}", flush=True)  # what fmnist.warm.ready reads
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    run_id = int(line)
    store = open_store()
    log = os.open(store.run_dir(run_id) / "train.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, sys.stdout.fileno())
    os.dup2(log, sys.stderr.fileno())
    os.chdir(store.run_dir(run_id))
    run = store.get(run_id)
    if run is None or run.status != RunStatus.QUEUED:
        print(f"run {run_id} is not queued", file=sys.stderr)
        return 2
    print(f"run {run_id}: trained by a warm trainer (Keras and the dataset loaded before it was queued)", file=sys.stderr, flush=True)
    from fmnist.console import ProgressBar, print_queued, print_trial

    progress = ProgressBar()
    try:
        summary = run_in_this_process(store, run_id, progress=progress, on_wait=print_queued, on_trial=print_trial, dataset=dataset)
    finally:
        progress.close()
    print(json.dumps(summary), flush=True)
    return exit_code(summary)


def help_in_this_process(store: RunStore, run_id: int) -> None:
    """A running search's extra trial process, on the same backend as the search's own."""
    from fmnist.keras_start import start_keras

    run = store.get(run_id)
    kind = kind_of(run)
    start_keras(kind.backend_for(run))
    kind.help(store, run)


def run_here_or_on_cluster(store: RunStore, run_id: int, progress=None, on_wait=None, on_trial=None, say=None) -> dict:
    """Train a run this process created (the command line's): in this process, or with FMNIST_RAY_ADDRESS
    set as a Ray job whose progress this process follows until it ends (a kind that stays local runs
    here either way). say(text), if given, hears where the run waits."""
    head = cluster.current()
    if head is None or kind_of(store.get(run_id)).local_only:
        return run_in_this_process(store, run_id, progress=progress, on_wait=on_wait, on_trial=on_trial)
    submit(store, head, run_id)
    said_queued = False
    try:
        while (run := store.get(run_id)).active:
            if run.status == RunStatus.QUEUED and not said_queued and say:
                say(f"run {run_id}: queued on the cluster ({head.address}, Ray job {run.cluster_job})")
                said_queued = True
            elif run.status == RunStatus.RUNNING and run.steps_per_epoch and progress:
                progress(run.epoch, run.total_epochs, run.step, run.steps_per_epoch, run.samples_per_s or 0.0)
            reap_dead_runs(store)
            time.sleep(0.5)
    except KeyboardInterrupt:
        if say:
            say(f"\nrun {run_id} goes on on the cluster: `python -m fmnist stop {run_id}` stops it")
        raise
    return store.get(run_id).summary()


def exit_code(summary: dict) -> int:
    """0 when the run ended with what it was for: a model (finished or stopped), or a search that ended on its own or was stopped."""
    status = RunStatus(summary["status"])
    if "search_id" in summary:
        return 0 if status in (RunStatus.FINISHED, RunStatus.STOPPED) else 1
    return 0 if status.has_model else 1


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

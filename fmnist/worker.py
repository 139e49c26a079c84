"""Training processes, the queue between them, and telling which are alive.

Every run trains in a process of its own (`python -m fmnist.jobs RUN_ID`, fmnist.jobs.process),
so nothing a browser does can kill or freeze it. A queued run's process waits
until it is first in line and fewer than FMNIST_MAX_PARALLEL runs (default 1)
are training. A run whose process is gone is marked interrupted by
`reap_dead_runs`, which the pages and the CLI call before they show runs.

With FMNIST_RAY_ADDRESS set, the same process is a Ray job instead (fmnist.cluster):
Ray's queue decides when it starts, and Ray's job status whether it lives. A search
itself stays a local process (it only asks Optuna and tells it); its trials are jobs.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from fmnist import cluster
from fmnist.runs import ACTIVE, RunKind, RunStatus
from fmnist.store import RunStore

POLL_S = 0.5
# A queued run is created by one process and handed to its own worker a moment later.
PID_GRACE_S = 30.0
INTERRUPTED = "its process ended without finishing (server restart, kill or crash)"


def max_parallel() -> int:
    return max(1, int(os.environ.get("FMNIST_MAX_PARALLEL", "1")))


# --- which processes are alive ---

def process_started(pid: int) -> str | None:
    """When a process started, so that a pid reused later (after a reboot) is not taken for
    the training that once had it. None if there is no such process."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def process_alive(pid: int, started: str | None = None) -> bool:
    """True while the process runs (a zombie, dead but not yet reaped, counts as dead) and,
    when `started` is given, is the same process that started then."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or f"{process.create_time():.2f}" == started
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return started is None


def this_process() -> tuple[int, str | None]:
    pid = os.getpid()
    return pid, process_started(pid)


def reap_dead_runs(store: RunStore) -> list[int]:
    """Mark queued or running runs whose process (or Ray job) is gone as interrupted; returns their ids."""
    now = time.time()
    active = store.list_runs(statuses=ACTIVE)
    # Each process is looked at once a sweep: a search and the trial it trains share its process,
    # and one that is dying while the sweep runs must not leave the trial reaped and the search not.
    processes = {(run.pid, run.pid_started) for run in active if run.pid is not None and not run.on_cluster}
    alive = {(pid, started): process_alive(pid, started) for pid, started in processes}
    dead = [
        run.id for run in active if not run.on_cluster and (
            (run.pid is None and now - run.created_at > PID_GRACE_S)
            or (run.pid is not None and not alive[run.pid, run.pid_started]))
    ]
    # A search's process creates each trial's run, then claims it: killed in between, it leaves a
    # trial that no process will ever claim. It goes with its search, not PID_GRACE_S later.
    dead += [run.id for run in active if run.kind == RunKind.TRIAL and run.pid is None and not run.on_cluster and run.parent_id in dead]
    if dead:
        store.mark_interrupted(dead, INTERRUPTED)
    return dead + reap_cluster_runs(store, [run for run in active if run.on_cluster])


def reap_cluster_runs(store: RunStore, runs: list) -> list[int]:
    """Cluster runs whose Ray job failed, was stopped, ended without ending its run (its node died, the
    job was killed) or is unknown to the cluster (its head restarted): interrupted, with Ray's reason.
    While the cluster cannot be reached (a head restarting, a network down) its runs may well be
    training: only one that has also written nothing to the store for FMNIST_RAY_LOST_S (default
    10 min) is taken for lost, so that a head that never comes back leaves no run running forever."""
    if not runs:
        return []
    try:
        head = cluster.current()
        if head is None:  # a store shared with a cluster, opened without its address: cannot tell
            return []
        states = head.job_states([run.cluster_job for run in runs])
    except cluster.ClusterError:
        return reap_lost_runs(store, runs)
    dead = []
    for run in runs:
        state, message = states[run.cluster_job]
        if state in cluster.ALIVE or (state == "UNKNOWN" and time.time() - run.created_at < PID_GRACE_S):
            continue
        store.mark_interrupted([run.id], cluster.why_ended(run.cluster_job, state, message))
        dead.append(run.id)
    return dead


def reap_lost_runs(store: RunStore, runs: list) -> list[int]:
    """Cluster runs that have written nothing for FMNIST_RAY_LOST_S while the cluster cannot be reached."""
    try:
        lost_after = cluster.lost_after_s()
    except cluster.ClusterError:
        lost_after = cluster.LOST_S
    now = time.time()
    lost = [run for run in runs if now - max(filter(None, (run.created_at, run.started_at, run.updated_at))) > lost_after]
    for run in lost:
        store.mark_interrupted([run.id], f"its Ray job {run.cluster_job} is lost: it has written nothing for over {lost_after:g} s "
                                         f"({cluster.LOST_ENV}) and the Ray cluster at {cluster.ADDRESS_ENV}={cluster.address()} "
                                         f"cannot be reached (its head down?)")
    return [run.id for run in lost]


# --- the queue ---

def try_start(store: RunStore, run_id: int, max_parallel: int | None) -> bool:
    """Move a queued run to running, owned by this process, if it is first in line and a slot is free."""
    return store.claim_slot(run_id, max_parallel, *this_process())


def wait_for_slot(store: RunStore, run_id: int, on_wait=None) -> bool:
    """Block until the run may start (True) or it was cancelled meanwhile (False). A run's Ray job
    starts at once: the cluster's queue already decided."""
    store.set_pid(run_id, *this_process())
    while True:
        if try_start(store, run_id, None if cluster.in_cluster_job() else max_parallel()):
            return True
        run = store.get(run_id)
        if run is None or run.status != RunStatus.QUEUED:
            return False
        if on_wait:
            on_wait(store.queue_position(run_id))
        reap_dead_runs(store)
        time.sleep(POLL_S)


# --- starting training processes ---

# The folder that holds this fmnist package: a training process imports the same code as the app
# that started it, whatever the current folder and whichever checkout pip installed last.
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def spawn(store: RunStore, run_id: int, *arguments: str) -> subprocess.Popen:
    """`python -m fmnist.jobs RUN_ID ARGUMENTS` in the run's folder, logging to its train.log."""
    run_dir = store.run_dir(run_id)
    python_path = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
    with open(run_dir / "train.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fmnist.jobs", str(run_id), *arguments],
            cwd=run_dir, env={**os.environ, "FMNIST_HOME": str(store.home), "PYTHONPATH": python_path},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives a Streamlit server restart or a Ctrl-C in its terminal
        )


def start_process(store: RunStore, run_id: int, local: bool = False) -> None:
    """The run's own `python -m fmnist.jobs RUN_ID`: a Ray job with FMNIST_RAY_ADDRESS set (unless local:
    a search's own process stays here), else a local process."""
    head = cluster.current()
    if head is not None and not local:
        submit(store, head, run_id)
        return
    process = spawn(store, run_id)
    store.set_pid(run_id, process.pid, process_started(process.pid))
    # Reap it when it ends, so a long-lived server does not collect zombies.
    threading.Thread(target=process.wait, daemon=True).start()


def submit(store: RunStore, head: "cluster.Cluster", run_id: int) -> None:
    """Submit a queued run as a Ray job; the job's id is recorded first, so that the reaper never
    finds a job without its run. A refused submission (ClusterError) fails the run, saying why."""
    submission_id = cluster.new_submission_id(run_id)
    store.set_cluster_job(run_id, submission_id)
    try:
        cpus, gpus = head.resources_per_run()
        head.submit(run_id, store.home, submission_id, cpus, gpus, cluster.custom_resources())
    except cluster.ClusterError as e:
        store.finish(run_id, RunStatus.FAILED, error=str(e))
        raise


def stop_run(store: RunStore, run_id: int) -> RunStatus:
    """Stop a run (fmnist.store.RunStore.request_stop): a running one at its next batch, keeping what
    it learnt; a queued one at once, and its Ray job with it when it waits in the cluster's queue
    (a search's queued trials too). KeyError for no such run."""
    waiting = [run for run in [store.get(run_id), *store.children(run_id)]
               if run is not None and run.on_cluster and run.status == RunStatus.QUEUED]
    status = store.request_stop(run_id)
    head = cluster.current() if waiting else None
    for run in waiting if head is not None else ():
        head.stop(run.cluster_job)
    return status


def start_search_helper(store: RunStore, search_id: int) -> subprocess.Popen:
    """Another process that trains a running search's trials, so that as many train at once as the queue allows."""
    return spawn(store, search_id, "--help-search")

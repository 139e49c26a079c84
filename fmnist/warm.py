"""Warm trainers: for each Keras backend, a run's process started ahead of time, which has imported
Keras and loaded the dataset and waits for the next run, so that a queued run skips the seconds
those take (`python -m fmnist.jobs --warm BACKEND`).

A warm trainer waits blocked on a read of its standard input, a pipe from the process that started
it (the app's server): it takes no CPU while it waits, and it ends when that pipe closes (the server
stopped). To start a run, the server writes the run's id into the pipe and closes it; the trainer
then is that run's own process, in a session of its own like every run's (it outlives a server
restart), writing to the run's train.log, and the server starts the next warm trainer.

Handed a run only when it is alive and runs the code the server runs now: one started before the
package's files changed (an upgrade) is replaced, and a dead one is passed over, the run starting
cold as it always did. FMNIST_WARM_TRAINER=0 turns warm trainers off (a class server may prefer the
memory: docs/performance.md, "Warm trainers").
"""

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from fmnist.store import RunStore
from fmnist.worker import PACKAGE_ROOT, process_started

ENABLED_ENV = "FMNIST_WARM_TRAINER"
_lock = threading.Lock()
# (run store folder, backend) -> (the waiting process, the code version it started with)
_waiting: dict[tuple[str, str], tuple[subprocess.Popen, str]] = {}


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip() not in ("0", "false", "no", "off")


def code_version() -> str:
    """The package's source files as they are now (names, sizes, modification times): a warm trainer
    started from other files is stale."""
    files = sorted(Path(PACKAGE_ROOT, "fmnist").rglob("*.py"))
    digest = hashlib.sha1()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def spawn_warm(store: RunStore, backend: str) -> subprocess.Popen:
    """A new warm trainer for backend, waiting on its stdin; its output goes to cache/warm-BACKEND.log
    until it is handed a run."""
    log_path = store.home / "cache" / f"warm-{backend}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    python_path = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fmnist.jobs", "--warm", backend], cwd=store.home,
            env={**os.environ, "FMNIST_HOME": str(store.home), "PYTHONPATH": python_path},
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends: no zombies
    return process


def prepare(store: RunStore, backends=("jax", "tensorflow")) -> None:
    """A warm trainer waiting for each backend, unless one waits already (the app calls this as it starts)."""
    if not enabled():
        return
    with _lock:
        for backend in backends:
            key = (str(store.home), backend)
            found = _waiting.get(key)
            if found is None or found[0].poll() is not None:
                _waiting[key] = (spawn_warm(store, backend), code_version())


def ready(store: RunStore, backend: str) -> bool:
    """Whether the waiting warm trainer of backend has loaded Keras and the dataset (its log says so)."""
    found = _waiting.get((str(store.home), backend))
    if found is None or found[0].poll() is not None:
        return False
    log = store.home / "cache" / f"warm-{backend}.log"
    return f"warm trainer ready: {backend}, pid {found[0].pid}" in log.read_text(errors="replace")


def hand_over(store: RunStore, run_id: int, backend: str) -> bool:
    """Give a queued run to the warm trainer of its backend (True), recording it as the run's process,
    and start the next one; False when there is none ready (off, none yet, dead or stale): start it cold."""
    if not enabled():
        return False
    key = (str(store.home), backend)
    version = code_version()
    with _lock:
        process, started_with = _waiting.pop(key, (None, None))
        _waiting[key] = (spawn_warm(store, backend), version)
    if process is None:
        return False
    if process.poll() is not None or started_with != version:
        process.kill()
        return False
    try:
        store.set_pid(run_id, process.pid, process_started(process.pid))
        process.stdin.write(f"{run_id}\n".encode())
        process.stdin.close()
    except (BrokenPipeError, OSError):  # it died just now: the reaper frees the pid, the caller starts the run cold
        store.set_pid(run_id, None, None)
        return False
    return True

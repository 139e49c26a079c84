"""The run store: one SQLite database (WAL: one writer, many readers) plus a folder per run.

A run moves queued -> running -> finished | stopped | failed; a queued run can be
cancelled; a run whose process died is marked interrupted by `reap_dead_runs`.
"""

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.home import home_dir
from fmnist.models import ModelSpec, count_params

ACTIVE = ("queued", "running")
ENDED = ("finished", "stopped", "failed", "interrupted", "cancelled")
# A queued run is created by one process and handed to its own worker a moment later.
PID_GRACE_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    pid_started TEXT,
    train_limit INTEGER,
    params INTEGER NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    steps_per_epoch INTEGER,
    samples_per_s REAL,
    updated_at REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    test_loss REAL,
    test_acc REAL,
    train_s REAL,
    best_val_acc REAL,
    cv_mean REAL,
    cv_std REAL,
    error TEXT,
    kind TEXT NOT NULL DEFAULT 'train',
    parent_id INTEGER,
    repeats INTEGER,
    scores_json TEXT,
    seeds_mean REAL,
    seeds_std REAL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL,
    seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss REAL, accuracy REAL,
    PRIMARY KEY (run_id, epoch, step)
);
"""


def add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a store written by an older version up to SCHEMA (new columns only, so old runs keep loading)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS runs"):SCHEMA.index(");")]
    for line in create.splitlines()[2:]:
        column = line.strip().rstrip(",")
        if column and column.split()[0] not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    db.commit()


class ModelFileError(RuntimeError):
    """A run's model file is missing or unreadable."""


@dataclass
class Run:
    id: int
    name: str
    spec: ModelSpec
    status: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    pid_started: str | None
    train_limit: int | None
    params: int
    epoch: int
    step: int
    steps_per_epoch: int | None
    samples_per_s: float | None
    updated_at: float | None
    stop_requested: bool
    test_loss: float | None
    test_acc: float | None
    train_s: float | None
    best_val_acc: float | None
    cv_mean: float | None
    cv_std: float | None
    error: str | None
    kind: str  # "train", or a job on a run's spec: "cv" (k-fold) or "seeds" (repeat with N seeds)
    parent_id: int | None
    repeats: int | None
    scores: list[float]
    seeds_mean: float | None
    seeds_std: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Run":
        data = dict(row)
        data["spec"] = ModelSpec.from_dict(json.loads(data.pop("spec_json")))
        data["stop_requested"] = bool(data["stop_requested"])
        data["scores"] = json.loads(data.pop("scores_json") or "[]")
        return cls(**data)

    @property
    def total_epochs(self) -> int:
        return self.spec.epochs * (self.repeats or 1)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def fraction_done(self) -> float:
        if self.status == "finished":
            return 1.0
        if not self.steps_per_epoch:
            return 0.0
        done = (max(self.epoch - 1, 0) + self.step / self.steps_per_epoch) / self.total_epochs
        return min(max(done, 0.0), 1.0)

    def eta_s(self) -> float | None:
        """Seconds left at the current speed (None before the first update)."""
        if not self.samples_per_s or not self.steps_per_epoch:
            return None
        samples_left = (1 - self.fraction_done()) * self.total_epochs * self.steps_per_epoch * self.spec.batch_size
        return samples_left / self.samples_per_s

    def summary(self) -> dict:
        """The fields the CLI and the leaderboard print."""
        return {
            "run_id": self.id, "name": self.name, "status": self.status, "params": self.params,
            "test_loss": self.test_loss, "test_acc": self.test_acc, "train_s": self.train_s,
            "samples_per_s": self.samples_per_s, "best_val_acc": self.best_val_acc,
            "cv_mean": self.cv_mean, "cv_std": self.cv_std, "seeds_mean": self.seeds_mean, "seeds_std": self.seeds_std,
            "kind": self.kind, "parent_id": self.parent_id, "scores": self.scores,
        }


def save_atomically(path: Path, write) -> None:
    """write(tmp_path), then move it into place: readers never see half a file."""
    tmp = path.with_name("tmp-" + path.name)
    write(tmp)
    os.replace(tmp, path)


def process_started(pid: int) -> str | None:
    """When a process started (boot id and clock ticks), so that a pid reused after a
    reboot is not taken for the training that once had it. None where /proc is missing."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{boot}:{ticks}"


def process_alive(pid: int, started: str | None = None) -> bool:
    """True while the process runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the kill check is all we have
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return started is None or process_started(pid) == started


class RunStore:
    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else home_dir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / "runs.sqlite"
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            db.executescript(SCHEMA)
            add_missing_columns(db)
        finally:
            db.close()

    @contextmanager
    def connect(self, write: bool = True):
        """A short-lived connection and one transaction, committed on success.

        Writers take the write lock up front (BEGIN IMMEDIATE) so that a
        read-then-write, like starting a queued run, cannot race another writer.
        """
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    def run_dir(self, run_id: int) -> Path:
        return self.home / f"run-{run_id:05d}"

    # --- creating and reading runs ---

    def create_run(self, spec: ModelSpec, name: str | None = None, train_limit: int | None = None, pid: int | None = None,
                   kind: str = "train", parent_id: int | None = None, repeats: int | None = None) -> int:
        with self.connect() as db:
            cur = db.execute(
                "INSERT INTO runs (name, spec_json, status, created_at, params, train_limit, pid, pid_started, kind, parent_id, repeats) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (name or "", json.dumps(spec.to_dict()), time.time(), count_params(spec), train_limit,
                 pid, pid and process_started(pid), kind, parent_id, repeats),
            )
            run_id = cur.lastrowid
            if not name:
                db.execute("UPDATE runs SET name = ? WHERE id = ?", (f"run {run_id}", run_id))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def get(self, run_id: int) -> Run | None:
        with self.connect(write=False) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Run.from_row(row) if row else None

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[Run]:
        self.reap_dead_runs()
        # Filtered in SQL: the sidebar asks for the active runs every two seconds on every open tab.
        statuses = tuple(statuses) if statuses is not None else None
        where = "" if statuses is None else f"WHERE status IN ({', '.join('?' * len(statuses))})"
        with self.connect(write=False) as db:
            rows = db.execute(f"SELECT * FROM runs {where} ORDER BY id", statuses or ()).fetchall()
        return [Run.from_row(row) for row in rows]

    def epochs(self, run_id: int) -> list[dict]:
        with self.connect(write=False) as db:
            rows = db.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def batches(self, run_id: int) -> list[dict]:
        with self.connect(write=False) as db:
            rows = db.execute("SELECT * FROM batches WHERE run_id = ? ORDER BY epoch, step", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def point_counts(self, run_id: int) -> tuple[int, int]:
        """How many epoch and batch points the run has: they change exactly when its curves do."""
        with self.connect(write=False) as db:
            return tuple(db.execute(
                "SELECT (SELECT COUNT(*) FROM epochs WHERE run_id = ?), (SELECT COUNT(*) FROM batches WHERE run_id = ?)",
                (run_id, run_id),
            ).fetchone())

    # --- the queue ---

    def set_pid(self, run_id: int, pid: int) -> None:
        with self.connect() as db:
            db.execute("UPDATE runs SET pid = ?, pid_started = ? WHERE id = ?", (pid, process_started(pid), run_id))

    def try_start(self, run_id: int, max_parallel: int) -> bool:
        """Move a queued run to running if it is first in the queue and a slot is free."""
        with self.connect() as db:
            running = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
            first = db.execute("SELECT MIN(id) FROM runs WHERE status = 'queued'").fetchone()[0]
            if running >= max_parallel or first != run_id:
                return False
            db.execute(
                "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, pid = ?, pid_started = ? WHERE id = ?",
                (time.time(), time.time(), os.getpid(), process_started(os.getpid()), run_id),
            )
            return True

    def queue_position(self, run_id: int) -> int:
        """1 for the next run to start."""
        with self.connect(write=False) as db:
            return db.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued' AND id <= ?", (run_id,)).fetchone()[0]

    def reap_dead_runs(self) -> list[int]:
        """Mark queued or running runs whose process is gone as interrupted."""
        now = time.time()
        with self.connect(write=False) as db:
            rows = db.execute("SELECT id, pid, pid_started, created_at FROM runs WHERE status IN ('queued', 'running')").fetchall()
        dead = [
            r["id"] for r in rows
            if (r["pid"] is None and now - r["created_at"] > PID_GRACE_S)
            or (r["pid"] is not None and not process_alive(r["pid"], r["pid_started"]))
        ]
        if dead:
            with self.connect() as db:
                db.executemany(
                    "UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? WHERE id = ? AND status IN ('queued', 'running')",
                    [(now, "its training process ended without finishing (server restart, kill or crash)", run_id) for run_id in dead],
                )
        return dead

    def request_stop(self, run_id: int) -> str:
        """Cancel a queued run, or ask a running one to stop at its next batch. Returns the new status."""
        with self.connect() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id}")
            if row["status"] == "queued":
                db.execute("UPDATE runs SET status = 'cancelled', ended_at = ? WHERE id = ?", (time.time(), run_id))
                return "cancelled"
            if row["status"] == "running":
                db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            return row["status"]

    def stop_requested(self, run_id: int) -> bool:
        with self.connect(write=False) as db:
            return bool(db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])

    # --- what a training writes ---

    def record_progress(self, run_id: int, epoch: int, step: int, steps_per_epoch: int, samples_per_s: float, batch_points: list[tuple]) -> bool:
        """Store progress and new per-batch points; returns whether a stop was requested."""
        with self.connect() as db:
            db.execute(
                "UPDATE runs SET epoch = ?, step = ?, steps_per_epoch = ?, samples_per_s = ?, updated_at = ? WHERE id = ?",
                (epoch, step, steps_per_epoch, samples_per_s, time.time(), run_id),
            )
            db.executemany(
                "INSERT OR REPLACE INTO batches (run_id, epoch, step, loss, accuracy) VALUES (?, ?, ?, ?, ?)",
                [(run_id, *point) for point in batch_points],
            )
            return bool(db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])

    def record_epoch(self, run_id: int, epoch: int, logs: dict, seconds: float) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, loss, accuracy, val_loss, val_accuracy, seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, epoch, logs.get("loss"), logs.get("accuracy"), logs.get("val_loss"), logs.get("val_accuracy"), seconds),
            )
            db.execute(
                "UPDATE runs SET epoch = ?, best_val_acc = MAX(COALESCE(best_val_acc, 0), COALESCE(?, 0)), updated_at = ? WHERE id = ?",
                (epoch, logs.get("val_accuracy"), time.time(), run_id),
            )

    def record_scores(self, job_id: int, scores: list[float]) -> None:
        """A job's scores so far; their mean and spread go on the job and on the run it repeats."""
        job = self.get(job_id)
        mean = float(np.mean(scores)) if scores else None
        std = float(np.std(scores)) if scores else None
        prefix = {"cv": "cv", "seeds": "seeds"}[job.kind]
        with self.connect() as db:
            db.execute("UPDATE runs SET scores_json = ? WHERE id = ?", (json.dumps(scores), job_id))
            for run_id in (job_id, job.parent_id):
                db.execute(f"UPDATE runs SET {prefix}_mean = ?, {prefix}_std = ? WHERE id = ?", (mean, std, run_id))

    def finish(self, run_id: int, status: str, **results) -> None:
        allowed = {"test_loss", "test_acc", "train_s", "samples_per_s", "error"}
        assert status in ENDED and set(results) <= allowed, (status, results)
        columns = ", ".join(f"{key} = ?" for key in results)
        with self.connect() as db:
            db.execute(
                f"UPDATE runs SET status = ?, ended_at = ?{', ' + columns if columns else ''} WHERE id = ?",
                (status, time.time(), *results.values(), run_id),
            )

    # --- managing runs ---

    def rename(self, run_id: int, name: str) -> None:
        with self.connect() as db:
            db.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip() or f"run {run_id}", run_id))

    def delete(self, run_id: int) -> None:
        """Remove a run that is not training, with its cross-validation and seed jobs and all their files."""
        with self.connect() as db:
            rows = db.execute("SELECT id, status FROM runs WHERE id = ? OR parent_id = ?", (run_id, run_id)).fetchall()
            for row in rows:
                if row["status"] in ACTIVE:
                    what = f"run {run_id}" if row["id"] == run_id else f"its job #{row['id']}"
                    raise RuntimeError(f"{what} is {row['status']}: stop it before deleting run {run_id}")
            db.execute("DELETE FROM runs WHERE id = ? OR parent_id = ?", (run_id, run_id))
        for row in rows:
            shutil.rmtree(self.run_dir(row["id"]), ignore_errors=True)

    def model_path(self, run_id: int) -> Path:
        return self.run_dir(run_id) / "model.keras"

    def probs_path(self, run_id: int) -> Path:
        """The model's class probabilities for the 10,000 test images (float32, 10000×10)."""
        return self.run_dir(run_id) / "test_probs.npy"

    def load_model(self, run_id: int):
        """The run's Keras model (safe_mode on); ModelFileError if it is missing or corrupt."""
        path = self.model_path(run_id)
        if not path.is_file():
            raise ModelFileError(f"run {run_id} has no model file ({path} is missing).")
        import keras

        try:
            return keras.saving.load_model(path, safe_mode=True)
        except Exception as e:  # Keras raises many kinds for a damaged zip or config
            raise ModelFileError(f"run {run_id}'s model file {path} is unreadable ({type(e).__name__}: {e}).") from e


def run_to_watch(runs: list[Run], own_run_id: int | None) -> Run | None:
    """The run a Train page shows: this session's while it is active, else the one
    training now (so a second tab sees it live), else the next queued, else this
    session's last run, else the newest."""
    by_id = {run.id: run for run in runs}
    own = by_id.get(own_run_id)
    if own and own.active:
        return own
    for status in ("running", "queued"):
        active = [run for run in runs if run.status == status]
        if active:
            return active[0]
    return own or (runs[-1] if runs else None)

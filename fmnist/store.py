"""The run store: the runs, their curves and scores in one database, and a folder per run.

SQLite in WAL mode (one writer, many readers) under $FMNIST_HOME; the tables and
their migrations are in fmnist.schema, what a run is in fmnist.runs. The store
only records: starting processes and telling which are alive is the worker's
job (fmnist.worker), loading models the Keras side's (fmnist.prediction).
Pages and the CLI get a store from `open_store`, the one place that chooses the
database.
"""

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fmnist import schema
from fmnist.backends import check_setting
from fmnist.home import StoreError, home_dir
from fmnist.models import ModelSpec, count_params
from fmnist.runs import ACTIVE, ENDED, LimitError, Run, RunKind, RunStatus

DAMAGED = (
    "It is not a Fashion-MNIST Studio run store, or it is damaged. It was left as it is: move it aside "
    "(e.g. `mv {path} {path}.damaged`) and the app starts a new, empty store beside your run folders, "
    "or restore a copy."
)


def store_problem(path: Path, error: sqlite3.Error) -> StoreError:
    """One clear message for a database that cannot be used, naming the file and what to do."""
    text = str(error)
    if "not a database" in text or "malformed" in text:
        advice = DAMAGED.format(path=path)
    elif "full" in text:
        advice = "The disk is full: free some space and try again."
    elif "readonly" in text or "unable to open" in text:
        advice = "Check that the folder exists and that you may write to it, or point FMNIST_HOME elsewhere."
    else:
        advice = "Try again; if it persists, check the file and the disk."
    return StoreError(f"The run store {path} cannot be used ({text}). {advice}")


def save_atomically(path: Path, write) -> None:
    """write(tmp_path), then move it into place: readers never see half a file, and a write that
    fails (a full disk) leaves nothing behind and raises its real cause."""
    tmp = path.with_name("tmp-" + path.name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunStore:
    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else home_dir()
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(f"The run store's folder {self.home} is a file, not a folder: point FMNIST_HOME at a folder.")
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"The run store's folder {self.home} cannot be created ({e.strerror or e}).") from e
        self.db_path = self.home / "runs.sqlite"
        try:
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise store_problem(self.db_path, e) from e
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            db.execute("BEGIN IMMEDIATE")
            try:
                schema.migrate(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise store_problem(self.db_path, e) from e
        except ValueError as e:  # a newer store
            raise StoreError(f"The run store {self.db_path} cannot be used: {e}. It was left as it is.") from e
        finally:
            db.close()

    @contextmanager
    def connect(self, write: bool = True):
        """A short-lived connection and one transaction, committed on success.

        Writers take the write lock up front (BEGIN IMMEDIATE) so that a
        read-then-write, like starting a queued run, cannot race another writer.
        """
        try:
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
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as e:
            if isinstance(e, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise store_problem(self.db_path, e) from e

    def run_dir(self, run_id: int) -> Path:
        return self.home / f"run-{run_id:05d}"

    def model_path(self, run_id: int) -> Path:
        return self.run_dir(run_id) / "model.keras"

    def probs_path(self, run_id: int) -> Path:
        """The model's class probabilities for the 10,000 test images (float32, 10000×10)."""
        return self.run_dir(run_id) / "test_probs.npy"

    # --- creating and reading runs ---

    def create_run(self, spec: ModelSpec, name: str | None = None, train_limit: int | None = None,
                   pid: int | None = None, pid_started: str | None = None, kind: RunKind = RunKind.TRAIN,
                   parent_id: int | None = None, repeats: int | None = None,
                   owner: str | None = None, owner_name: str | None = None, owner_limit: int | None = None,
                   space_json: str | None = None, backend_setting: str = "auto") -> int:
        """A queued run; pid and pid_started name the process that will train it, when it is known already;
        backend_setting is auto, tensorflow or jax (fmnist.backends).

        With owner_limit, the owner may have at most that many runs queued or running: counted and
        inserted in one transaction, so two tabs clicking at once cannot pass it (LimitError).
        """
        check_setting(backend_setting)
        with self.connect() as db:
            if owner_limit is not None:
                marks = ", ".join("?" * len(ACTIVE))
                active = db.execute(f"SELECT COUNT(*) FROM runs WHERE owner IS ? AND status IN ({marks})", (owner, *ACTIVE)).fetchone()[0]
                if active >= owner_limit:
                    raise LimitError(f"You have {active} trainings queued or running, the most one person may have "
                                     f"({owner_limit}): wait for one to end, or stop one, then start this one.")
            cur = db.execute(
                "INSERT INTO runs (name, spec_json, status, created_at, params, train_limit, pid, pid_started, kind, parent_id, repeats, "
                "owner, owner_name, space_json, backend_setting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name or "", json.dumps(spec.to_dict()), RunStatus.QUEUED, time.time(), count_params(spec), train_limit,
                 pid, pid_started, RunKind(kind), parent_id, repeats, owner, owner_name, space_json, backend_setting),
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

    def list_runs(self, statuses: tuple[RunStatus, ...] | None = None) -> list[Run]:
        """Runs in the order they were created; a read only (the worker marks dead runs: fmnist.worker.reap_dead_runs)."""
        with self.connect(write=False) as db:
            if statuses is None:
                rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
            else:
                marks = ", ".join("?" * len(statuses))
                rows = db.execute(f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY id", statuses).fetchall()
        return [Run.from_row(row) for row in rows]

    def epochs(self, run_id: int) -> list[dict]:
        with self.connect(write=False) as db:
            rows = db.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def epochs_of(self, run_ids: list[int]) -> dict[int, list[dict]]:
        """Several runs' epoch rows in one read (a search's trials)."""
        found = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        with self.connect(write=False) as db:
            rows = db.execute(f"SELECT * FROM epochs WHERE run_id IN ({', '.join('?' * len(run_ids))}) ORDER BY run_id, epoch",
                              list(run_ids)).fetchall()
        for row in rows:
            found[row["run_id"]].append(dict(row))
        return found

    def children(self, parent_id: int) -> list[Run]:
        """A job's or a search's runs (its parts, its trials), oldest first."""
        with self.connect(write=False) as db:
            rows = db.execute("SELECT * FROM runs WHERE parent_id = ? ORDER BY id", (parent_id,)).fetchall()
        return [Run.from_row(row) for row in rows]

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

    # --- the queue's records (the worker decides; these are its atomic steps) ---

    def set_pid(self, run_id: int, pid: int, pid_started: str | None) -> None:
        with self.connect() as db:
            db.execute("UPDATE runs SET pid = ?, pid_started = ? WHERE id = ?", (pid, pid_started, run_id))

    def claim_slot(self, run_id: int, max_parallel: int, pid: int, pid_started: str | None) -> bool:
        """In one transaction: move a queued run to running if it is first in the queue and fewer
        than max_parallel runs are running.

        Searches have a queue of their own, one running at a time: a search trains nothing itself,
        its trials queue for training slots like every other run.
        """
        with self.connect() as db:
            row = db.execute("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            searches = RunKind(row["kind"]) == RunKind.SEARCH
            same_queue = "kind = ?" if searches else "kind != ?"
            running = db.execute(f"SELECT COUNT(*) FROM runs WHERE status = ? AND {same_queue}", (RunStatus.RUNNING, RunKind.SEARCH)).fetchone()[0]
            first = db.execute(f"SELECT MIN(id) FROM runs WHERE status = ? AND {same_queue}", (RunStatus.QUEUED, RunKind.SEARCH)).fetchone()[0]
            if running >= (1 if searches else max_parallel) or first != run_id:
                return False
            now = time.time()
            db.execute(
                "UPDATE runs SET status = ?, started_at = ?, updated_at = ?, pid = ?, pid_started = ? WHERE id = ?",
                (RunStatus.RUNNING, now, now, pid, pid_started, run_id),
            )
            return True

    def queue_position(self, run_id: int) -> int:
        """1 for the next run to start (in its queue: searches have their own)."""
        with self.connect(write=False) as db:
            kind = db.execute("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone()["kind"]
            same_queue = "kind = ?" if kind == RunKind.SEARCH else "kind != ?"
            return db.execute(f"SELECT COUNT(*) FROM runs WHERE status = ? AND id <= ? AND {same_queue}",
                              (RunStatus.QUEUED, run_id, RunKind.SEARCH)).fetchone()[0]

    def mark_interrupted(self, run_ids: list[int], reason: str) -> None:
        """Runs whose process is gone; a run that ended meanwhile keeps its status."""
        marks = ", ".join("?" * len(ACTIVE))
        with self.connect() as db:
            db.executemany(
                f"UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status IN ({marks})",
                [(RunStatus.INTERRUPTED, time.time(), reason, run_id, *ACTIVE) for run_id in run_ids],
            )

    def request_stop(self, run_id: int) -> RunStatus:
        """Cancel a queued run, or ask a running one to stop at its next batch. Returns the new status."""
        with self.connect() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id}")
            status = RunStatus(row["status"])
            # A search's trials stop with it: the running one at its next batch, the queued ones at once.
            db.execute("UPDATE runs SET status = ?, ended_at = ? WHERE parent_id = ? AND kind = ? AND status = ?",
                       (RunStatus.CANCELLED, time.time(), run_id, RunKind.TRIAL, RunStatus.QUEUED))
            db.execute("UPDATE runs SET stop_requested = 1 WHERE parent_id = ? AND kind = ? AND status = ?",
                       (run_id, RunKind.TRIAL, RunStatus.RUNNING))
            if status == RunStatus.QUEUED:
                db.execute("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (RunStatus.CANCELLED, time.time(), run_id))
                return RunStatus.CANCELLED
            if status == RunStatus.RUNNING:
                db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            return status

    def requeue(self, run_id: int) -> None:
        """Queue an ended search again, to resume or extend it (its finished trials stay)."""
        marks = ", ".join("?" * len(ACTIVE))
        with self.connect() as db:
            changed = db.execute(
                f"UPDATE runs SET status = ?, ended_at = NULL, stop_requested = 0, error = NULL, pid = NULL, pid_started = NULL, "
                f"created_at = ? WHERE id = ? AND kind = ? AND status NOT IN ({marks})",
                (RunStatus.QUEUED, time.time(), run_id, RunKind.SEARCH, *ACTIVE),
            ).rowcount
        if not changed:
            raise ValueError(f"run {run_id} is not an ended search")

    def update_search(self, search_id: int, space_json: str | None = None, elapsed_s: float | None = None,
                      best_val_acc: float | None = None) -> None:
        """A search's space (an extended budget), the seconds it has run over all its sessions, its best trial's score."""
        with self.connect() as db:
            if space_json is not None:
                db.execute("UPDATE runs SET space_json = ? WHERE id = ?", (space_json, search_id))
            if elapsed_s is not None:
                db.execute("UPDATE runs SET train_s = ?, updated_at = ? WHERE id = ?", (elapsed_s, time.time(), search_id))
            if best_val_acc is not None:
                db.execute("UPDATE runs SET best_val_acc = ? WHERE id = ?", (best_val_acc, search_id))

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

    def record_engine(self, run_id: int, backend: str, device: str) -> None:
        """The Keras backend and the device that train the run, as its training starts."""
        with self.connect() as db:
            db.execute("UPDATE runs SET backend = ?, device = ? WHERE id = ?", (backend, device, run_id))

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
        prefix = {RunKind.CV: "cv", RunKind.SEEDS: "seeds"}[job.kind]
        with self.connect() as db:
            db.execute("UPDATE runs SET scores_json = ? WHERE id = ?", (json.dumps(scores), job_id))
            for run_id in (job_id, job.parent_id):
                db.execute(f"UPDATE runs SET {prefix}_mean = ?, {prefix}_std = ? WHERE id = ?", (mean, std, run_id))

    def finish(self, run_id: int, status: RunStatus, **results) -> None:
        allowed = {"test_loss", "test_acc", "train_s", "samples_per_s", "error"}
        if RunStatus(status) not in ENDED or not set(results) <= allowed:
            raise ValueError(f"a run ends as one of {', '.join(ENDED)} with {', '.join(sorted(allowed))}; got {status}, {sorted(results)}")
        columns = ", ".join(f"{key} = ?" for key in results)
        with self.connect() as db:
            db.execute(
                f"UPDATE runs SET status = ?, ended_at = ?{', ' + columns if columns else ''} WHERE id = ?",
                (RunStatus(status), time.time(), *results.values(), run_id),
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
                if RunStatus(row["status"]).active:
                    what = f"run {run_id}" if row["id"] == run_id else f"its job #{row['id']}"
                    raise RuntimeError(f"{what} is {row['status']}: stop it before deleting run {run_id}")
            db.execute("DELETE FROM runs WHERE id = ? OR parent_id = ?", (run_id, run_id))
        for row in rows:
            shutil.rmtree(self.run_dir(row["id"]), ignore_errors=True)


    # --- the people of a class (fmnist.access.sign_in_with_class_code) ---

    def person(self, person_id: str) -> tuple[str, str] | None:
        """(name as first written, password hash) of a class member, or None for a name nobody has taken."""
        with self.connect(write=False) as db:
            row = db.execute("SELECT name, password_hash FROM people WHERE id = ?", (person_id,)).fetchone()
        return (row["name"], row["password_hash"]) if row else None

    def add_person(self, person_id: str, name: str, password_hash: str) -> None:
        """The first sign-in under a name; a second one racing it loses (the name is taken)."""
        with self.connect() as db:
            db.execute("INSERT INTO people (id, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
                       (person_id, name, password_hash, time.time()))

    def forget_person(self, person_id: str) -> bool:
        """Free a name (a forgotten password): the next sign-in under it sets a new one. Their runs stay theirs."""
        with self.connect() as db:
            db.execute("DELETE FROM sign_ins WHERE person_id = ?", (person_id,))
            return db.execute("DELETE FROM people WHERE id = ?", (person_id,)).rowcount > 0

    def add_sign_in(self, token: str, person_id: str, name: str, admin: bool) -> None:
        with self.connect() as db:
            db.execute("INSERT INTO sign_ins (token, person_id, name, admin, created_at) VALUES (?, ?, ?, ?, ?)",
                       (token, person_id, name, int(admin), time.time()))

    def signed_in(self, token: str) -> tuple[str, str, bool] | None:
        """(person id, name, admin) of a live sign-in, or None once its person signed out."""
        with self.connect(write=False) as db:
            row = db.execute("SELECT person_id, name, admin FROM sign_ins WHERE token = ?", (token,)).fetchone()
        return (row["person_id"], row["name"], bool(row["admin"])) if row else None

    def sign_out(self, person_id: str) -> None:
        """Ends all of the person's sign-ins: a tab left open elsewhere can no longer act."""
        with self.connect() as db:
            db.execute("DELETE FROM sign_ins WHERE person_id = ?", (person_id,))


def open_store(home: Path | None = None) -> RunStore:
    """The run store the app and the CLI use: the one place that picks the database (SQLite under
    $FMNIST_HOME today), so that another can be added without touching the pages."""
    return RunStore(home)

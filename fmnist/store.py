"""The run store: the runs, their curves and scores in one database, and a folder per run.

The database is SQLite in WAL mode under $FMNIST_HOME, or PostgreSQL when FMNIST_DB names one
(fmnist.database chooses, and keeps what differs between them); the queries are SQLAlchemy Core,
written once for both. The tables are in fmnist.schema, their migrations in fmnist.migrations,
what a run is in fmnist.runs; the people of a class are a store of their own in the same
database (fmnist.people, reached as `store.people`), and so are the class challenges (fmnist.challenges,
`store.challenges`). The run folders (models, curves for TensorBoard) are always under $FMNIST_HOME: on a
cluster, a folder every node mounts. The store only records: starting processes and telling
which are alive is the worker's job (fmnist.worker), loading models the Keras side's
(fmnist.prediction). Pages and the CLI get a store from `open_store`.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fmnist import migrations, schema
from fmnist.backends import check_setting
from fmnist.challenges import ChallengeStore
from fmnist.database import Database, configured_url, with_retries
from fmnist.home import StoreError, home_dir
from fmnist.models import ModelSpec, count_params
from fmnist.names import run_name
from fmnist.people import PeopleStore
from fmnist.queue_order import Waiting, fair_order, lesson_seconds
from fmnist.runs import ACTIVE, DERIVED_QUEUE, ENDED, SEARCH_QUEUE, TRAINING_QUEUE, LimitError, Run, RunKind, RunStatus
from fmnist.schema import app_settings, batches, epochs, runs

# The setting a teacher's pause writes (who paused, and when); while it is set no run starts (claim_slot).
QUEUE_PAUSED = "queue_paused"
# How many runs of a queue may run at once, where the queue itself says so: searches, one at a time
# (a search trains nothing itself; its trials queue for training slots like every other run). The
# training queue's slots are the caller's max_parallel (fmnist.worker).
QUEUE_SLOTS = {SEARCH_QUEUE: 1}


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


# The store holds the class' password hashes, its folder every run's model: readable by their owner
# only when the app creates them (SQLite makes its -wal and -shm files with the database's own mode).
# A store that exists keeps the mode it has: a cluster's shared folder may be meant to be shared.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def create_private(path: Path) -> None:
    """Create an empty file readable and writable by its owner only, unless it exists."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    except FileExistsError:
        pass
    except OSError:
        pass  # the database's own open says what is wrong, with its message


def upsert(db, table: sa.Table, rows: list[dict]) -> None:
    """Insert rows, replacing those with the same key (a point written again after a retry)."""
    if not rows:
        return
    insert = (sqlite.insert if db.dialect.name == "sqlite" else postgresql.insert)(table)
    keys = [column.name for column in table.primary_key]
    db.execute(insert.on_conflict_do_update(index_elements=keys,
                                            set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}),
               rows)


def run_of(row) -> Run:
    return Run.from_row(row._mapping)


class RunStore:
    def __init__(self, home: Path | None = None, url=None):
        """The store with its run folders in home (default $FMNIST_HOME) and its tables in FMNIST_DB's
        database (url: another one; default SQLite in home). StoreError, with what to do, when it
        cannot be used; a store's tables are created or migrated here."""
        self.home = Path(home) if home else home_dir()
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(f"The run store's folder {self.home} is a file, not a folder: point FMNIST_HOME at a folder.")
        try:
            self.home.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"The run store's folder {self.home} cannot be created ({e.strerror or e}).") from e
        self.db_path = self.home / "runs.sqlite"
        if url is None and configured_url() is None:
            create_private(self.db_path)
        self.database = Database(url if url is not None else configured_url(), self.db_path)
        self.study_storage = None  # the searches' Optuna storage, made when first needed (fmnist.studies)
        try:
            self.database.prepare()
            with self.connect() as db:
                migrations.upgrade(db)
        except migrations.NewerStore as e:
            raise StoreError(f"The run store {self.database.where()} cannot be used: {e}. It was left as it is.") from e
        except sa.exc.DBAPIError as e:
            raise self.database.problem(e) from e
        self.people = PeopleStore(self.database)
        self.challenges = ChallengeStore(self.database)

    def connect(self, write: bool = True):
        """A connection and one transaction, committed on success (fmnist.database.Database.transaction)."""
        return self.database.transaction(write)

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
                   space_json: str | None = None, backend_setting: str = "auto",
                   queue: str = TRAINING_QUEUE, settings: dict | None = None, teacher: bool = False) -> int:
        """A queued run in queue (see QUEUE_SLOTS); pid and pid_started name the process that will train it,
        when it is known already; backend_setting is auto, tensorflow or jax (fmnist.backends); settings,
        the kind's inputs (fmnist.runs.Run.settings). repeats and space_json are settings' "repeats" and
        "space" under their old names; teacher: a teacher's run, which goes ahead of students' in its
        queue (fmnist.queue_order).

        With owner_limit, the owner may have at most that many runs queued or running: counted and
        inserted in one transaction, so two tabs clicking at once cannot pass it (LimitError). Runs of
        DERIVED_QUEUE (a projection, an export: fmnist.runs) neither count nor are counted.
        """
        check_setting(backend_setting)
        settings = dict(settings or {})
        if repeats is not None:
            settings["repeats"] = repeats
        if space_json is not None:
            settings["space"] = json.loads(space_json)
        if teacher:
            settings["teacher"] = True
        name = run_name(name) if name else None  # BadName (a ValueError): too long, or characters that do not show
        with self.connect() as db:
            if owner_limit is not None and queue != DERIVED_QUEUE:
                active = db.execute(sa.select(sa.func.count()).select_from(runs).where(
                    runs.c.owner.is_not_distinct_from(owner), runs.c.status.in_(texts(ACTIVE)), runs.c.queue != DERIVED_QUEUE)).scalar()
                if active >= owner_limit:
                    raise LimitError(f"You have {active} trainings queued or running, the most one person may have "
                                     f"({owner_limit}): wait for one to end, or stop one, then start this one.")
            run_id = db.execute(runs.insert().values(
                name=name or "", spec_json=json.dumps(spec.to_dict()), status=str(RunStatus.QUEUED), created_at=time.time(),
                params=count_params(spec), train_limit=train_limit, pid=pid, pid_started=pid_started, kind=str(RunKind(kind)),
                parent_id=parent_id, owner=owner, owner_name=owner_name, backend_setting=backend_setting, queue=queue,
                settings_json=json_or_null(settings), epoch=0, step=0, stop_requested=0,
            ).returning(runs.c.id)).scalar_one()
            if not name:
                db.execute(runs.update().where(runs.c.id == run_id).values(name=f"run {run_id}"))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    @with_retries
    def get(self, run_id: int) -> Run | None:
        with self.connect(write=False) as db:
            row = db.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return run_of(row) if row else None

    def list_runs(self, statuses: tuple[RunStatus, ...] | None = None) -> list[Run]:
        """Runs in the order they were created; a read only (the worker marks dead runs: fmnist.worker.reap_dead_runs)."""
        query = sa.select(runs).order_by(runs.c.id)
        if statuses is not None:
            query = query.where(runs.c.status.in_(texts(statuses)))
        with self.connect(write=False) as db:
            rows = db.execute(query).fetchall()
        return [run_of(row) for row in rows]

    def epochs(self, run_id: int) -> list[dict]:
        with self.connect(write=False) as db:
            rows = db.execute(sa.select(epochs).where(epochs.c.run_id == run_id).order_by(epochs.c.epoch)).fetchall()
        return [dict(r._mapping) for r in rows]

    def epochs_of(self, run_ids: list[int]) -> dict[int, list[dict]]:
        """Several runs' epoch rows in one read (a search's trials)."""
        found = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        with self.connect(write=False) as db:
            rows = db.execute(sa.select(epochs).where(epochs.c.run_id.in_(list(run_ids)))
                              .order_by(epochs.c.run_id, epochs.c.epoch)).fetchall()
        for row in rows:
            found[row.run_id].append(dict(row._mapping))
        return found

    def children(self, parent_id: int) -> list[Run]:
        """A job's or a search's runs (its parts, its trials), oldest first."""
        with self.connect(write=False) as db:
            rows = db.execute(sa.select(runs).where(runs.c.parent_id == parent_id).order_by(runs.c.id)).fetchall()
        return [run_of(row) for row in rows]

    def batches(self, run_id: int) -> list[dict]:
        with self.connect(write=False) as db:
            rows = db.execute(sa.select(batches).where(batches.c.run_id == run_id)
                              .order_by(batches.c.epoch, batches.c.step)).fetchall()
        return [dict(r._mapping) for r in rows]

    def point_counts(self, run_id: int) -> tuple[int, int]:
        """How many epoch and batch points the run has: they change exactly when its curves do."""
        count = sa.func.count
        with self.connect(write=False) as db:
            return tuple(db.execute(sa.select(
                sa.select(count()).select_from(epochs).where(epochs.c.run_id == run_id).scalar_subquery(),
                sa.select(count()).select_from(batches).where(batches.c.run_id == run_id).scalar_subquery(),
            )).one())

    # --- the queue's records (the worker decides; these are its atomic steps) ---

    @with_retries
    def set_pid(self, run_id: int, pid: int, pid_started: str | None) -> None:
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(pid=pid, pid_started=pid_started))

    def set_cluster_job(self, run_id: int, submission_id: str) -> None:
        """The Ray job that trains the run (fmnist.cluster), recorded before it is submitted."""
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(cluster_job=submission_id))

    @with_retries
    def claim_slot(self, run_id: int, max_parallel: int | None, pid: int, pid_started: str | None) -> bool:
        """In one transaction: move a queued run to running if it is next in its queue's fair order
        (fmnist.queue_order) and fewer runs of its queue are running than the queue has slots:
        QUEUE_SLOTS' for a queue that sets them, else max_parallel (None: no limit, the cluster queues
        them itself). While the queue is paused (queue_paused) no run starts, in any queue.
        """
        with self.connect() as db:
            row = db.execute(sa.select(runs.c.queue, runs.c.status).where(runs.c.id == run_id)).first()
            if row is None or row.status != RunStatus.QUEUED or read_setting(db, QUEUE_PAUSED) is not None:
                return False  # not queued, or a teacher paused the queue: it keeps its place
            slots = QUEUE_SLOTS.get(row.queue, max_parallel)
            if slots is not None:
                running = db.execute(sa.select(sa.func.count()).select_from(runs).where(
                    runs.c.status == str(RunStatus.RUNNING), runs.c.queue == row.queue)).scalar()
                if running >= slots or self.queue_order(db, row.queue)[:1] != [run_id]:
                    return False
            now = time.time()
            db.execute(runs.update().where(runs.c.id == run_id).values(
                status=str(RunStatus.RUNNING), started_at=now, updated_at=now, pid=pid, pid_started=pid_started))
            return True

    @staticmethod
    def queue_order(db, queue: str) -> list[int]:
        """The queued runs of queue in the order they start: round-robin across people this lesson."""
        waiting = [Waiting(row.id, row.owner, row.created_at, bool(json.loads(row.settings_json or "{}").get("teacher")))
                   for row in db.execute(sa.select(runs.c.id, runs.c.owner, runs.c.created_at, runs.c.settings_json).where(
                       runs.c.status == str(RunStatus.QUEUED), runs.c.queue == queue)).fetchall()]
        started = dict(db.execute(sa.select(runs.c.owner, sa.func.count()).where(
            runs.c.queue == queue, runs.c.started_at >= time.time() - lesson_seconds()).group_by(runs.c.owner)).fetchall())
        return fair_order(waiting, started)

    def queue_position(self, run_id: int) -> int:
        """1 for the next run to start in its queue (0: it is not queued)."""
        with self.connect(write=False) as db:
            queue = db.execute(sa.select(runs.c.queue).where(runs.c.id == run_id)).scalar()
            order = self.queue_order(db, queue) if queue else []
        return order.index(run_id) + 1 if run_id in order else 0

    def queue_ahead(self, run_id: int) -> list[int]:
        """The queued runs that start before this one, in order."""
        with self.connect(write=False) as db:
            queue = db.execute(sa.select(runs.c.queue).where(runs.c.id == run_id)).scalar()
            order = self.queue_order(db, queue) if queue else []
        return order[:order.index(run_id)] if run_id in order else []

    @with_retries
    def mark_interrupted(self, run_ids: list[int], reason: str) -> None:
        """Runs whose process is gone; a run that ended meanwhile keeps its status."""
        if not run_ids:
            return
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id.in_(list(run_ids)), runs.c.status.in_(texts(ACTIVE))).values(
                status=str(RunStatus.INTERRUPTED), ended_at=time.time(), error=reason))

    def request_stop(self, run_id: int, stop_children_of_kinds: tuple[str, ...] = (RunKind.TRIAL,)) -> RunStatus:
        """Cancel a queued run, or ask a running one to stop at its next batch. Returns the new status.
        Its children of stop_children_of_kinds (a search's trials) stop with it."""
        with self.connect() as db:
            status = db.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise KeyError(f"no run {run_id}")
            status = RunStatus(status)
            # A search's trials stop with it: the running one at its next batch, the queued ones at once.
            trials = runs.update().where(runs.c.parent_id == run_id, runs.c.kind.in_(texts(stop_children_of_kinds)))
            db.execute(trials.where(runs.c.status == str(RunStatus.QUEUED)).values(status=str(RunStatus.CANCELLED), ended_at=time.time()))
            db.execute(trials.where(runs.c.status == str(RunStatus.RUNNING)).values(stop_requested=1))
            this = runs.update().where(runs.c.id == run_id)
            if status == RunStatus.QUEUED:
                db.execute(this.values(status=str(RunStatus.CANCELLED), ended_at=time.time()))
                return RunStatus.CANCELLED
            if status == RunStatus.RUNNING:
                db.execute(this.values(stop_requested=1))
            return status

    def requeue(self, run_id: int, allowed_kinds: tuple[str, ...] = (RunKind.SEARCH,)) -> None:
        """Queue an ended run of a kind that can resume again (a search: to resume or extend it, its
        finished trials stay). ValueError for any other."""
        with self.connect() as db:
            changed = db.execute(runs.update().where(
                runs.c.id == run_id, runs.c.kind.in_(texts(allowed_kinds)), runs.c.status.not_in(texts(ACTIVE))
            ).values(status=str(RunStatus.QUEUED), ended_at=None, stop_requested=0, error=None, pid=None, pid_started=None,
                     created_at=time.time())).rowcount
        if not changed:
            raise ValueError(f"run {run_id} is not an ended {' or '.join(texts(allowed_kinds))}")

    @with_retries
    def update_search(self, search_id: int, space_json: str | None = None, elapsed_s: float | None = None,
                      best_val_acc: float | None = None, space: dict | None = None) -> None:
        """A search's space (an extended budget; its settings' "space", or space_json, the same as JSON),
        the seconds it has run over all its sessions, its best trial's score."""
        values = {} if best_val_acc is None else {"best_val_acc": best_val_acc}
        if elapsed_s is not None:
            values |= {"train_s": elapsed_s, "updated_at": time.time()}
        if space_json is not None:
            space = json.loads(space_json)
        if values or space is not None:
            with self.connect() as db:
                if space is not None:
                    merge_json(db, search_id, runs.c.settings_json, {"space": space})
                if values:
                    db.execute(runs.update().where(runs.c.id == search_id).values(**values))

    @with_retries
    def stop_requested(self, run_id: int) -> bool:
        with self.connect(write=False) as db:
            return bool(db.execute(sa.select(runs.c.stop_requested).where(runs.c.id == run_id)).scalar())

    # --- what a training writes (waiting out a database server's restart: with_retries) ---

    @with_retries
    def record_progress(self, run_id: int, epoch: int, step: int, steps_per_epoch: int, samples_per_s: float, batch_points: list[tuple]) -> bool:
        """Store progress and new per-batch points; returns whether a stop was requested."""
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(
                epoch=epoch, step=step, steps_per_epoch=steps_per_epoch, samples_per_s=samples_per_s, updated_at=time.time()))
            upsert(db, batches, [dict(zip(("run_id", "epoch", "step", "loss", "accuracy"), (run_id, *point), strict=True))
                                 for point in batch_points])
            return bool(db.execute(sa.select(runs.c.stop_requested).where(runs.c.id == run_id)).scalar())

    @with_retries
    def record_stage(self, run_id: int, stage: str, fraction: float) -> bool:
        """Where a run that works in stages stands (fmnist.runs.Run.stage); returns whether a stop was requested."""
        with self.connect() as db:
            if not merge_json(db, run_id, runs.c.result_json, {"stage": {"stage": stage, "fraction": float(fraction)}}):
                raise KeyError(f"no run {run_id}")
            db.execute(runs.update().where(runs.c.id == run_id).values(updated_at=time.time()))
            return bool(db.execute(sa.select(runs.c.stop_requested).where(runs.c.id == run_id)).scalar())

    @with_retries
    def record_engine(self, run_id: int, backend: str, device: str) -> None:
        """The Keras backend and the device that train the run, as its training starts."""
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(backend=backend, device=device))

    @with_retries
    def record_epoch(self, run_id: int, epoch: int, logs: dict, seconds: float) -> None:
        val_accuracy = logs.get("val_accuracy") or 0.0
        with self.connect() as db:
            upsert(db, epochs, [{"run_id": run_id, "epoch": epoch, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                                 "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"), "seconds": seconds}])
            best_so_far = sa.func.coalesce(runs.c.best_val_acc, 0.0)
            db.execute(runs.update().where(runs.c.id == run_id).values(
                epoch=epoch, updated_at=time.time(),
                best_val_acc=sa.case((best_so_far > val_accuracy, best_so_far), else_=sa.literal(float(val_accuracy), schema.REAL))))

    @with_retries
    def record_scores(self, job_id: int, scores: list[float]) -> None:
        """A job's scores so far, with their mean and spread, in its result; the mean and spread also
        go in the result of the run it repeats, under the job's kind ({"cv": {"mean", "std", "job"}})."""
        mean = float(np.mean(scores)) if scores else None
        std = float(np.std(scores)) if scores else None
        with self.connect() as db:
            job = db.execute(sa.select(runs.c.kind, runs.c.parent_id).where(runs.c.id == job_id)).first()
            if job is None:
                raise KeyError(f"no run {job_id}")
            merge_json(db, job_id, runs.c.result_json, {"scores": list(scores), "mean": mean, "std": std})
            if job.parent_id is not None:
                merge_json(db, job.parent_id, runs.c.result_json, {job.kind: {"mean": mean, "std": std, "job": job_id}})

    @with_retries
    def set_result(self, run_id: int, result: dict) -> None:
        """Add result's keys to the run's result (fmnist.runs.Run.result), replacing those it had."""
        with self.connect() as db:
            if not merge_json(db, run_id, runs.c.result_json, result):
                raise KeyError(f"no run {run_id}")

    @with_retries
    def finish(self, run_id: int, status: RunStatus, **results) -> None:
        allowed = {"test_loss", "test_acc", "train_s", "samples_per_s", "error"}
        if RunStatus(status) not in ENDED or not set(results) <= allowed:
            raise ValueError(f"a run ends as one of {', '.join(ENDED)} with {', '.join(sorted(allowed))}; got {status}, {sorted(results)}")
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(status=str(RunStatus(status)), ended_at=time.time(), **results))

    # --- the class's settings (app_settings): a key, its JSON value ---

    def setting(self, key: str):
        """A setting's value (None: not set)."""
        with self.connect(write=False) as db:
            return read_setting(db, key)

    @with_retries
    def set_setting(self, key: str, value) -> None:
        """Set a setting to a JSON value, or clear it (None)."""
        with self.connect() as db:
            db.execute(app_settings.delete().where(app_settings.c.key == key))
            if value is not None:
                db.execute(app_settings.insert().values(key=key, value=json.dumps(value), updated_at=time.time()))

    def queue_paused(self) -> dict | None:
        """While the queue is paused: {"by": who paused it (their name), "since": when}; None while it runs."""
        return self.setting(QUEUE_PAUSED)

    # --- managing runs ---

    def rename(self, run_id: int, name: str) -> None:
        """BadName (a ValueError) for a name too long or holding characters that do not show; nothing changes then."""
        name = run_name(name) if name.strip() else f"run {run_id}"
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(name=name))

    def delete(self, run_id: int) -> None:
        """Remove a run that is not training, with its jobs (cross-validation, seeds, projections, exports) and all their files."""
        family = sa.or_(runs.c.id == run_id, runs.c.parent_id == run_id)
        with self.connect() as db:
            rows = db.execute(sa.select(runs.c.id, runs.c.status).where(family)).fetchall()
            for row in rows:
                if RunStatus(row.status).active:
                    what = f"run {run_id}" if row.id == run_id else f"its job #{row.id}"
                    raise RuntimeError(f"{what} is {row.status}: stop it before deleting run {run_id}")
            db.execute(runs.delete().where(family))
        for row in rows:
            shutil.rmtree(self.run_dir(row.id), ignore_errors=True)


def read_setting(db, key: str):
    """A setting's value inside an open transaction (None: not set)."""
    value = db.execute(sa.select(app_settings.c.value).where(app_settings.c.key == key)).scalar()
    return None if value is None else json.loads(value)


def texts(values) -> list[str]:
    """Enum members as the plain strings the store holds."""
    return [str(value) for value in values]


def json_or_null(value: dict) -> str | None:
    return json.dumps(value) if value else None


def merge_json(db, run_id: int, column: sa.Column, keys: dict) -> bool:
    """Set keys in a run's JSON object column (settings_json, result_json), keeping its others; inside
    a write transaction, whose lock keeps another writer from merging in between. False: no such run."""
    row = db.execute(sa.select(column).where(runs.c.id == run_id)).first()
    if row is None:
        return False
    db.execute(runs.update().where(runs.c.id == run_id).values({column.name: json_or_null(json.loads(row[0] or "{}") | keys)}))
    return True


def open_store(home: Path | None = None) -> RunStore:
    """The run store the app and the CLI use: SQLite under $FMNIST_HOME, or FMNIST_DB's database."""
    return RunStore(home)

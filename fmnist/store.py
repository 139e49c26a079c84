"""The run store: the runs, their curves and scores in one database, and a folder per run.

The database is SQLite in WAL mode under $FMNIST_HOME, or PostgreSQL when FMNIST_DB names one
(fmnist.database chooses, and keeps what differs between them); the queries are SQLAlchemy Core,
written once for both. The tables and their migrations are in fmnist.schema, what a run is in
fmnist.runs. The run folders (models, curves for TensorBoard) are always under $FMNIST_HOME: on a
cluster, a folder every node mounts. The store only records: starting processes and telling
which are alive is the worker's job (fmnist.worker), loading models the Keras side's
(fmnist.prediction). Pages and the CLI get a store from `open_store`.
"""

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fmnist import schema
from fmnist.backends import check_setting
from fmnist.database import Database, configured_url, with_retries
from fmnist.home import StoreError, home_dir
from fmnist.models import ModelSpec, count_params
from fmnist.names import run_name
from fmnist.runs import ACTIVE, ENDED, LimitError, Run, RunKind, RunStatus
from fmnist.schema import batches, epochs, people, runs, sign_ins


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
                schema.migrate(db)
        except ValueError as e:  # a newer store
            raise StoreError(f"The run store {self.database.where()} cannot be used: {e}. It was left as it is.") from e
        except sa.exc.DBAPIError as e:
            raise self.database.problem(e) from e

    @contextmanager
    def connect(self, write: bool = True):
        """A connection and one transaction, committed on success. Writers take the store's write lock
        up front, so that a read-then-write, like starting a queued run, cannot race another writer."""
        try:
            with self.database.engine.connect() as db:
                db.execution_options(**self.database.transaction_options(write))
                with db.begin():
                    if write:
                        self.database.lock_for_write(db)
                    yield db
        except sa.exc.DBAPIError as e:
            if isinstance(e, sa.exc.IntegrityError | sa.exc.ProgrammingError) and not e.connection_invalidated:
                raise
            raise self.database.problem(e) from e

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
        name = run_name(name) if name else None  # BadName (a ValueError): too long, or characters that do not show
        with self.connect() as db:
            if owner_limit is not None:
                active = db.execute(sa.select(sa.func.count()).select_from(runs).where(
                    runs.c.owner.is_not_distinct_from(owner), runs.c.status.in_(texts(ACTIVE)))).scalar()
                if active >= owner_limit:
                    raise LimitError(f"You have {active} trainings queued or running, the most one person may have "
                                     f"({owner_limit}): wait for one to end, or stop one, then start this one.")
            run_id = db.execute(runs.insert().values(
                name=name or "", spec_json=json.dumps(spec.to_dict()), status=str(RunStatus.QUEUED), created_at=time.time(),
                params=count_params(spec), train_limit=train_limit, pid=pid, pid_started=pid_started, kind=str(RunKind(kind)),
                parent_id=parent_id, repeats=repeats, owner=owner, owner_name=owner_name, space_json=space_json,
                backend_setting=backend_setting, epoch=0, step=0, stop_requested=0,
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
        """In one transaction: move a queued run to running if it is first in the queue and fewer
        than max_parallel runs are running (None: no limit, the cluster queues them itself).

        Searches have a queue of their own, one running at a time: a search trains nothing itself,
        its trials queue for training slots like every other run.
        """
        with self.connect() as db:
            row = db.execute(sa.select(runs.c.kind, runs.c.status).where(runs.c.id == run_id)).first()
            if row is None or row.status != RunStatus.QUEUED:
                return False
            searches = RunKind(row.kind) == RunKind.SEARCH
            if searches or max_parallel is not None:
                same_queue = (runs.c.kind == str(RunKind.SEARCH)) if searches else (runs.c.kind != str(RunKind.SEARCH))
                running = db.execute(sa.select(sa.func.count()).select_from(runs).where(
                    runs.c.status == str(RunStatus.RUNNING), same_queue)).scalar()
                first = db.execute(sa.select(sa.func.min(runs.c.id)).where(runs.c.status == str(RunStatus.QUEUED), same_queue)).scalar()
                if running >= (1 if searches else max_parallel) or first != run_id:
                    return False
            now = time.time()
            db.execute(runs.update().where(runs.c.id == run_id).values(
                status=str(RunStatus.RUNNING), started_at=now, updated_at=now, pid=pid, pid_started=pid_started))
            return True

    def queue_position(self, run_id: int) -> int:
        """1 for the next run to start (in its queue: searches have their own)."""
        with self.connect(write=False) as db:
            kind = db.execute(sa.select(runs.c.kind).where(runs.c.id == run_id)).scalar()
            same_queue = (runs.c.kind == str(RunKind.SEARCH)) if kind == RunKind.SEARCH else (runs.c.kind != str(RunKind.SEARCH))
            return db.execute(sa.select(sa.func.count()).select_from(runs).where(
                runs.c.status == str(RunStatus.QUEUED), runs.c.id <= run_id, same_queue)).scalar()

    @with_retries
    def mark_interrupted(self, run_ids: list[int], reason: str) -> None:
        """Runs whose process is gone; a run that ended meanwhile keeps its status."""
        if not run_ids:
            return
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id.in_(list(run_ids)), runs.c.status.in_(texts(ACTIVE))).values(
                status=str(RunStatus.INTERRUPTED), ended_at=time.time(), error=reason))

    def request_stop(self, run_id: int) -> RunStatus:
        """Cancel a queued run, or ask a running one to stop at its next batch. Returns the new status."""
        with self.connect() as db:
            status = db.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise KeyError(f"no run {run_id}")
            status = RunStatus(status)
            # A search's trials stop with it: the running one at its next batch, the queued ones at once.
            trials = runs.update().where(runs.c.parent_id == run_id, runs.c.kind == str(RunKind.TRIAL))
            db.execute(trials.where(runs.c.status == str(RunStatus.QUEUED)).values(status=str(RunStatus.CANCELLED), ended_at=time.time()))
            db.execute(trials.where(runs.c.status == str(RunStatus.RUNNING)).values(stop_requested=1))
            this = runs.update().where(runs.c.id == run_id)
            if status == RunStatus.QUEUED:
                db.execute(this.values(status=str(RunStatus.CANCELLED), ended_at=time.time()))
                return RunStatus.CANCELLED
            if status == RunStatus.RUNNING:
                db.execute(this.values(stop_requested=1))
            return status

    def requeue(self, run_id: int) -> None:
        """Queue an ended search again, to resume or extend it (its finished trials stay)."""
        with self.connect() as db:
            changed = db.execute(runs.update().where(
                runs.c.id == run_id, runs.c.kind == str(RunKind.SEARCH), runs.c.status.not_in(texts(ACTIVE))
            ).values(status=str(RunStatus.QUEUED), ended_at=None, stop_requested=0, error=None, pid=None, pid_started=None,
                     created_at=time.time())).rowcount
        if not changed:
            raise ValueError(f"run {run_id} is not an ended search")

    @with_retries
    def update_search(self, search_id: int, space_json: str | None = None, elapsed_s: float | None = None,
                      best_val_acc: float | None = None) -> None:
        """A search's space (an extended budget), the seconds it has run over all its sessions, its best trial's score."""
        values = {"space_json": space_json, "best_val_acc": best_val_acc}
        values = {key: value for key, value in values.items() if value is not None}
        if elapsed_s is not None:
            values |= {"train_s": elapsed_s, "updated_at": time.time()}
        if values:
            with self.connect() as db:
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
        """A job's scores so far; their mean and spread go on the job and on the run it repeats."""
        job = self.get(job_id)
        mean = float(np.mean(scores)) if scores else None
        std = float(np.std(scores)) if scores else None
        prefix = {RunKind.CV: "cv", RunKind.SEEDS: "seeds"}[job.kind]
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == job_id).values(scores_json=json.dumps(scores)))
            db.execute(runs.update().where(runs.c.id.in_([job_id, job.parent_id])).values(
                {f"{prefix}_mean": mean, f"{prefix}_std": std}))

    @with_retries
    def finish(self, run_id: int, status: RunStatus, **results) -> None:
        allowed = {"test_loss", "test_acc", "train_s", "samples_per_s", "error"}
        if RunStatus(status) not in ENDED or not set(results) <= allowed:
            raise ValueError(f"a run ends as one of {', '.join(ENDED)} with {', '.join(sorted(allowed))}; got {status}, {sorted(results)}")
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(status=str(RunStatus(status)), ended_at=time.time(), **results))

    # --- managing runs ---

    def rename(self, run_id: int, name: str) -> None:
        """BadName (a ValueError) for a name too long or holding characters that do not show; nothing changes then."""
        name = run_name(name) if name.strip() else f"run {run_id}"
        with self.connect() as db:
            db.execute(runs.update().where(runs.c.id == run_id).values(name=name))

    def delete(self, run_id: int) -> None:
        """Remove a run that is not training, with its cross-validation and seed jobs and all their files."""
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


    # --- the people of a class (fmnist.access.sign_in_with_class_code) ---

    @staticmethod
    def _under_name(name_key: str):
        """The rows of everyone who ever signed in under a name: name_key, or (rows written before it) the id it was."""
        return sa.or_(people.c.name_key == name_key, people.c.id == f"class:{name_key}")

    def person(self, name_key: str) -> tuple[str, str, str] | None:
        """(id, name as first written, password hash) of the class member who holds a name now, or None for
        a name nobody holds (never taken, or freed by forget_person)."""
        with self.connect(write=False) as db:
            row = db.execute(sa.select(people.c.id, people.c.name, people.c.password_hash).where(
                self._under_name(name_key), people.c.retired_at.is_(None))).first()
        return (row.id, row.name, row.password_hash) if row else None

    def people_names(self) -> list[str]:
        """The names held now (to refuse a new name that looks like one of them)."""
        with self.connect(write=False) as db:
            return list(db.execute(sa.select(people.c.name).where(people.c.retired_at.is_(None))).scalars())

    def add_person(self, name_key: str, name: str, password_hash: str) -> str | None:
        """The first sign-in under a name: the new person's id, or None when another sign-in took the name
        meanwhile. A name freed before gets a new id (class#2:ada, which no name's own id can be): the runs of the
        person who held it stay theirs."""
        with self.connect() as db:
            rows = db.execute(sa.select(people.c.id, people.c.retired_at).where(self._under_name(name_key))).fetchall()
            if any(row.retired_at is None for row in rows):
                return None
            person_id = f"class#{len(rows) + 1}:{name_key}" if rows else f"class:{name_key}"
            db.execute(people.insert().values(id=person_id, name=name, password_hash=password_hash, created_at=time.time(),
                                              name_key=name_key))
        return person_id

    def set_password_hash(self, person_id: str, password_hash: str) -> None:
        """A password's hash made again with today's scrypt cost, at a sign-in that had the password."""
        with self.connect() as db:
            db.execute(people.update().where(people.c.id == person_id).values(password_hash=password_hash))

    def forget_person(self, name_key: str) -> bool:
        """Free a name (a forgotten password): its person is retired with their runs, signed out everywhere,
        and the next sign-in under the name is a new person, who does not own them (a teacher still may manage them)."""
        with self.connect() as db:
            row = db.execute(sa.select(people.c.id).where(self._under_name(name_key), people.c.retired_at.is_(None))).first()
            if row is None:
                return False
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == row.id))
            db.execute(people.update().where(people.c.id == row.id).values(retired_at=time.time(), password_hash="retired"))
            return True

    def add_sign_in(self, token: str, person_id: str, name: str, admin: bool) -> None:
        with self.connect() as db:
            db.execute(sign_ins.insert().values(token=token, person_id=person_id, name=name, admin=int(admin), created_at=time.time()))

    def signed_in(self, token: str) -> tuple[str, str, bool] | None:
        """(person id, name, admin) of a live sign-in, or None once its person signed out."""
        with self.connect(write=False) as db:
            row = db.execute(sa.select(sign_ins.c.person_id, sign_ins.c.name, sign_ins.c.admin).where(sign_ins.c.token == token)).first()
        return (row.person_id, row.name, bool(row.admin)) if row else None

    def sign_out(self, person_id: str) -> None:
        """Ends all of the person's sign-ins: a tab left open elsewhere can no longer act."""
        with self.connect() as db:
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == person_id))


def texts(values) -> list[str]:
    """Enum members as the plain strings the store holds."""
    return [str(value) for value in values]


def open_store(home: Path | None = None) -> RunStore:
    """The run store the app and the CLI use: SQLite under $FMNIST_HOME, or FMNIST_DB's database."""
    return RunStore(home)

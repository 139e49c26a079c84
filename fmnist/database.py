"""Which database holds the run store, and how to talk to it: SQLite or PostgreSQL, one code path.

FMNIST_DB unset: the SQLite file runs.sqlite in $FMNIST_HOME, as the app has always kept it (WAL
mode: one writer, many readers; a short-lived connection per transaction). FMNIST_DB set to a
PostgreSQL URL as people write it (`postgresql://user:password@host/db`): that database, through
psycopg 3, so that training processes on other machines write their progress where the app reads
it. Both go through SQLAlchemy Core (fmnist.store writes the queries once).

What differs is kept here: how a writer takes the store's write lock (SQLite: BEGIN IMMEDIATE;
PostgreSQL: a transaction-scoped advisory lock, so that counting a queue and claiming a slot
cannot race, as on SQLite), and what a fault means to the person who meets it: a message naming
the file or FMNIST_DB, and whether waiting may help (a PostgreSQL server restarting).
"""

import os
import sqlite3
import time
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from fmnist.home import StoreError

DB_ENV = "FMNIST_DB"
# Any fixed number: every writer of the store takes this PostgreSQL advisory lock first.
WRITE_LOCK_KEY = 0x464D4E495354  # "FMNIST"
CONNECT_TIMEOUT_S = 5
# How long a training's write waits for a PostgreSQL server that went away (restarted, failed over)
# before it gives up, in seconds: FMNIST_DB_WAIT_S, default 30. SQLite needs none: its writers wait
# for the lock 30 s themselves.
WAIT_ENV = "FMNIST_DB_WAIT_S"
DEFAULT_WAIT_S = 30.0

DAMAGED = (
    "It is not a Fashion-MNIST Studio run store, or it is damaged. It was left as it is: move it aside "
    "(e.g. `mv {path} {path}.damaged`) and the app starts a new, empty store beside your run folders, "
    "or restore a copy."
)


class StoreUnreachable(StoreError):
    """The database server cannot be reached now; a write may try again (with_retries)."""


def database_url(text: str) -> URL:
    """FMNIST_DB as SQLAlchemy wants it: postgresql:// (or postgres://) on the psycopg 3 driver.
    StoreError, naming the variable, for anything else."""
    try:
        url = sa.engine.make_url(text.strip())
    except sa.exc.ArgumentError:
        raise StoreError(f"{DB_ENV}={text!r} is not a database URL: write it as postgresql://user:password@host/database, "
                         "or unset it to use the SQLite store in FMNIST_HOME") from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    raise StoreError(f"{DB_ENV}={url.render_as_string(hide_password=True)}: the run store runs on PostgreSQL "
                     "(postgresql://user:password@host/database); unset it to use the SQLite store in FMNIST_HOME")


def configured_url() -> URL | None:
    """FMNIST_DB's database, or None for the SQLite file (StoreError for a URL that is not PostgreSQL's)."""
    text = os.environ.get(DB_ENV, "").strip()
    return database_url(text) if text else None


class Database:
    """The run store's engine, and the few things that depend on which database it is."""

    def __init__(self, url: URL | None, sqlite_path: Path):
        self.url = url
        self.sqlite_path = sqlite_path
        if url is None:
            self.engine = sqlite_engine(sqlite_path)
        else:
            self.engine = sa.create_engine(
                url, pool_pre_ping=True, pool_size=2, max_overflow=8,  # a stale connection (server restarted) is replaced
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "fmnist"},
            )

    @property
    def is_sqlite(self) -> bool:
        return self.url is None

    def where(self) -> str:
        """The store as its messages name it: the file, or FMNIST_DB without its password."""
        if self.is_sqlite:
            return str(self.sqlite_path)
        return f"{DB_ENV}={self.url.set(drivername='postgresql').render_as_string(hide_password=True)}"

    def url_text(self) -> str:
        """The URL with its password, for the study storage (Optuna opens its own engine)."""
        return self.url.render_as_string(hide_password=False)

    def transaction_options(self, write: bool) -> dict:
        """Set on a connection before its transaction begins. Writers take the store's write lock up
        front (lock_for_write), so that a read-then-write (starting a queued run) cannot race another
        writer; readers see one snapshot, as SQLite's do."""
        if self.is_sqlite:
            return {"fmnist_write": write}  # sqlite_engine's begin hook reads it
        return {} if write else {"isolation_level": "REPEATABLE READ"}

    def lock_for_write(self, connection: Connection) -> None:
        if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE took it
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})

    @contextmanager
    def transaction(self, write: bool = True):
        """A connection and one transaction, committed on success. Writers take the store's write lock
        up front, so that a read-then-write, like starting a queued run, cannot race another writer.
        A fault is one StoreError (problem); a broken constraint or query is raised as it is."""
        try:
            with self.engine.connect() as db:
                db.execution_options(**self.transaction_options(write))
                with db.begin():
                    if write:
                        self.lock_for_write(db)
                    yield db
        except sa.exc.DBAPIError as e:
            if isinstance(e, sa.exc.IntegrityError | sa.exc.ProgrammingError) and not e.connection_invalidated:
                raise
            raise self.problem(e) from e

    def prepare(self) -> None:
        """SQLite: WAL mode, once (it is kept in the file): readers never block the writer."""
        if self.is_sqlite:
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as e:
                raise sqlite_problem(self.sqlite_path, str(e)) from e
            finally:
                raw.close()

    def problem(self, error: sa.exc.DBAPIError) -> StoreError:
        """One clear message for a database that cannot be used, naming it and what to do."""
        text = str(error.orig).strip() or type(error.orig).__name__
        if not self.is_sqlite:
            if isinstance(error, sa.exc.OperationalError) or error.connection_invalidated:
                return StoreUnreachable(
                    f"The run store at {self.where()} cannot be reached ({first_line(text)}). Check that PostgreSQL runs "
                    f"there and that the URL's host, port, user and password are right; or unset {DB_ENV} to use the "
                    "SQLite store in FMNIST_HOME.")
            return StoreError(f"The run store at {self.where()} cannot be used ({first_line(text)}). Check that the "
                              "database user may create tables there and write to them.")
        return sqlite_problem(self.sqlite_path, text)


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def sqlite_problem(path: Path, text: str) -> StoreError:
    if "not a database" in text or "malformed" in text:
        advice = DAMAGED.format(path=path)
    elif "full" in text:
        advice = "The disk is full: free some space and try again."
    elif "readonly" in text or "unable to open" in text:
        advice = "Check that the folder exists and that you may write to it, or point FMNIST_HOME elsewhere."
    else:
        advice = "Try again; if it persists, check the file and the disk."
    return StoreError(f"The run store {path} cannot be used ({text}). {advice}")


def sqlite_engine(path: Path) -> Engine:
    """A new connection for every transaction (no pool), as the store always worked: nothing is held
    open between a page's reads, and a training process forks nothing. Transactions are begun by
    hand, IMMEDIATE for writers (sqlite3's own implicit BEGIN would be a deferred one)."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record):
        dbapi_connection.isolation_level = None  # no implicit BEGIN: `on_begin` says which
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def on_begin(connection: Connection):
        write = connection.get_execution_options().get("fmnist_write", True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def retry_delays() -> list[float]:
    """Pauses between tries, doubling from half a second, that add up to FMNIST_DB_WAIT_S."""
    try:
        left = max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S)))
    except ValueError:
        raise StoreError(f"{WAIT_ENV}={os.environ[WAIT_ENV]!r}: seconds, e.g. 30") from None
    delays, delay = [], 0.5
    while left > 0:
        delays.append(min(delay, left))
        left -= delays[-1]
        delay *= 2
    return delays


def with_retries(method):
    """A store method that waits out a PostgreSQL server that went away (a restart): it tries again,
    for FMNIST_DB_WAIT_S in all, then raises the last StoreUnreachable. For idempotent methods only:
    a transaction that failed may have committed before its answer was lost."""
    @wraps(method)
    def retried(*args, **kwargs):
        for delay in (*retry_delays(), None):
            try:
                return method(*args, **kwargs)
            except StoreUnreachable:
                if delay is None:
                    raise
                time.sleep(delay)
    return retried

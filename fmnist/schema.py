"""The run store's tables, and the migrations that bring an older store up to date.

One schema for SQLite (the embedded default) and PostgreSQL (FMNIST_DB): the migrations are
written once, in SQL both understand, with the few words that differ (an auto-numbered key, a
64-bit float) filled in per database by `ddl`; a SQLite store gets exactly the tables it always
had. A store records its version (SQLite: `PRAGMA user_version`, as stores always have;
PostgreSQL: the table store_version); each migration moves it one version on, inside the
transaction that opens the store, so a store is never left half-migrated. Stores written before
versioning (version 0) gain the columns they lack; no row is ever rewritten.

The tables as they stand at VERSION are also described for SQLAlchemy Core (`metadata`), which
writes the store's queries in each database's own dialect (fmnist.store).
"""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id {AUTO_ID},
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at {REAL} NOT NULL,
    started_at {REAL},
    ended_at {REAL},
    pid INTEGER,
    train_limit INTEGER,
    params INTEGER NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    steps_per_epoch INTEGER,
    samples_per_s {REAL},
    updated_at {REAL},
    stop_requested INTEGER NOT NULL DEFAULT 0,
    test_loss {REAL},
    test_acc {REAL},
    train_s {REAL},
    best_val_acc {REAL},
    cv_mean {REAL},
    cv_std {REAL},
    error TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    loss {REAL}, accuracy {REAL}, val_loss {REAL}, val_accuracy {REAL},
    seconds {REAL},
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss {REAL}, accuracy {REAL},
    PRIMARY KEY (run_id, epoch, step)
);
"""

# The words that differ. PostgreSQL's REAL is a 32-bit float, too coarse for a timestamp: its
# 64-bit one is DOUBLE PRECISION (SQLite's REAL already is one).
TYPES = {
    "sqlite": {"AUTO_ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "REAL": "REAL"},
    "postgresql": {"AUTO_ID": "SERIAL PRIMARY KEY", "REAL": "DOUBLE PRECISION"},
}


def ddl(db: Connection, statement: str) -> None:
    """Run one schema statement, its {AUTO_ID} and {REAL} written in the database's own words."""
    db.exec_driver_sql(statement.format(**TYPES[db.dialect.name]))


# Columns added to `runs` before the store had a version, in the order they came.
COLUMNS_BEFORE_VERSIONING = (
    ("pid_started", "TEXT"),  # when the run's process started: a reused pid is not the training
    ("kind", "TEXT NOT NULL DEFAULT 'train'"),
    ("parent_id", "INTEGER"),
    ("repeats", "INTEGER"),
    ("scores_json", "TEXT"),
    ("seeds_mean", "{REAL}"),
    ("seeds_std", "{REAL}"),
)


def to_version_1(db: Connection) -> None:
    """The tables as they stood when versioning began."""
    for statement in TABLES.split(";"):
        if statement.strip():
            ddl(db, statement)
    have = {column["name"] for column in sa.inspect(db).get_columns("runs")}
    for name, definition in COLUMNS_BEFORE_VERSIONING:
        if name not in have:
            ddl(db, f"ALTER TABLE runs ADD COLUMN {name} {definition}")


def to_version_2(db: Connection) -> None:
    """Owners: who started each run (NULL: this machine's own user, as every run before sharing),
    the people of a class, each with the hash of the password that keeps their name theirs, and
    who is signed in."""
    ddl(db, "ALTER TABLE runs ADD COLUMN owner TEXT")
    ddl(db, "ALTER TABLE runs ADD COLUMN owner_name TEXT")
    ddl(db, """CREATE TABLE IF NOT EXISTS people (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at {REAL} NOT NULL
    )""")
    # A browser session's sign-in: signing out ends every one of that person's, in every tab.
    ddl(db, """CREATE TABLE IF NOT EXISTS sign_ins (
        token TEXT PRIMARY KEY,
        person_id TEXT NOT NULL,
        name TEXT NOT NULL,
        admin INTEGER NOT NULL,
        created_at {REAL} NOT NULL
    )""")


def to_version_3(db: Connection) -> None:
    """Searches: a search is a run of kind 'search' holding its space; its trials are runs of kind 'trial'."""
    ddl(db, "ALTER TABLE runs ADD COLUMN space_json TEXT")


def to_version_4(db: Connection) -> None:
    """Which Keras backend a run asked for and which trained it, on which device (CPU model or GPU name).
    Runs trained before keep them empty (TensorFlow was the only backend then; no row is rewritten)."""
    ddl(db, "ALTER TABLE runs ADD COLUMN backend_setting TEXT")  # auto, tensorflow or jax
    ddl(db, "ALTER TABLE runs ADD COLUMN backend TEXT")
    ddl(db, "ALTER TABLE runs ADD COLUMN device TEXT")


def to_version_5(db: Connection) -> None:
    """The Ray job a run was submitted as (its submission id), when runs go to a Ray cluster; NULL for a
    local process, as every run before."""
    ddl(db, "ALTER TABLE runs ADD COLUMN cluster_job TEXT")


def to_version_6(db: Connection) -> None:
    """People are no longer their name: a person's id stays with their runs when `forget-person` frees the
    name (retired_at set), and the next person to sign in under it gets an id of their own (fmnist.access).
    name_key is the casefolded name that makes two spellings one person; NULL in rows written before,
    whose id is "class:" followed by it."""
    have = {column["name"] for column in sa.inspect(db).get_columns("people")}
    for name, definition in (("name_key", "TEXT"), ("retired_at", "{REAL}")):
        if name not in have:  # a store whose version was set back by hand may have them
            ddl(db, f"ALTER TABLE people ADD COLUMN {name} {definition}")


# MIGRATIONS[i] takes a store from version i to version i + 1.
MIGRATIONS = (to_version_1, to_version_2, to_version_3, to_version_4, to_version_5, to_version_6)
VERSION = len(MIGRATIONS)


def stored_version(db: Connection) -> int:
    if db.dialect.name == "sqlite":
        return db.exec_driver_sql("PRAGMA user_version").scalar()
    db.exec_driver_sql("CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL)")
    return db.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM store_version").scalar()


def record_version(db: Connection, version: int) -> None:
    if db.dialect.name == "sqlite":
        db.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
    else:
        db.exec_driver_sql("DELETE FROM store_version")
        db.execute(sa.text("INSERT INTO store_version (version) VALUES (:version)"), {"version": version})


def migrate(db: Connection) -> int:
    """Bring the store in db (inside an open write transaction) to VERSION; returns the version it had.

    Raises ValueError for a store written by a newer version of the app, which this one must not touch.
    """
    found = stored_version(db)
    if found > VERSION:
        raise ValueError(f"it was written by a newer version of Fashion-MNIST Studio (store version {found}, "
                         f"this version knows up to {VERSION}): update the app")
    for migration in MIGRATIONS[found:]:
        migration(db)
    if found != VERSION:
        record_version(db, VERSION)
    return found


# --- the tables at VERSION, for the store's queries ---

metadata = sa.MetaData()
REAL = sa.Float(precision=53)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
    sa.Column("started_at", REAL),
    sa.Column("ended_at", REAL),
    sa.Column("pid", sa.Integer),
    sa.Column("train_limit", sa.Integer),
    sa.Column("params", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("steps_per_epoch", sa.Integer),
    sa.Column("samples_per_s", REAL),
    sa.Column("updated_at", REAL),
    sa.Column("stop_requested", sa.Integer, nullable=False),
    sa.Column("test_loss", REAL),
    sa.Column("test_acc", REAL),
    sa.Column("train_s", REAL),
    sa.Column("best_val_acc", REAL),
    sa.Column("cv_mean", REAL),
    sa.Column("cv_std", REAL),
    sa.Column("error", sa.Text),
    sa.Column("pid_started", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("parent_id", sa.Integer),
    sa.Column("repeats", sa.Integer),
    sa.Column("scores_json", sa.Text),
    sa.Column("seeds_mean", REAL),
    sa.Column("seeds_std", REAL),
    sa.Column("owner", sa.Text),
    sa.Column("owner_name", sa.Text),
    sa.Column("space_json", sa.Text),
    sa.Column("backend_setting", sa.Text),
    sa.Column("backend", sa.Text),
    sa.Column("device", sa.Text),
    sa.Column("cluster_job", sa.Text),
)

epochs = sa.Table(
    "epochs", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("loss", REAL), sa.Column("accuracy", REAL), sa.Column("val_loss", REAL), sa.Column("val_accuracy", REAL),
    sa.Column("seconds", REAL),
)

batches = sa.Table(
    "batches", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("loss", REAL), sa.Column("accuracy", REAL),
)

people = sa.Table(
    "people", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
    sa.Column("name_key", sa.Text),
    sa.Column("retired_at", REAL),
)

sign_ins = sa.Table(
    "sign_ins", metadata,
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("person_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("admin", sa.Integer, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
)

"""How stores were migrated before Alembic: versions 0 to 5, kept as they were written.

A store records its legacy version (SQLite: `PRAGMA user_version`; PostgreSQL: the table
store_version); each function below moved it one version on. They are the first Alembic revision
(versions/0001_legacy.py) word for word, rather than a rewrite in Alembic's operations: they are
what every store written before Alembic went through, a version 0 store (from before versioning)
may lack any of the columns added before version 1, and a rewrite could differ from them in a way
no test of a new store would show. The words that differ between the two databases (an
auto-numbered key, a 64-bit float) are filled in per database by `ddl`; a SQLite store gets exactly
the tables it always had.
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


# MIGRATIONS[i] takes a store from version i to version i + 1.
MIGRATIONS = (to_version_1, to_version_2, to_version_3, to_version_4, to_version_5)
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


def migrate(db: Connection, to_version: int = VERSION) -> int:
    """Bring a legacy store in db (inside an open write transaction) to to_version; returns the version it had."""
    found = stored_version(db)
    for migration in MIGRATIONS[found:to_version]:
        migration(db)
    if found < to_version:
        record_version(db, to_version)
    return found

"""The run store's tables, and the migrations that bring an older store up to date.

A store records its version in SQLite's `PRAGMA user_version`; each migration
moves it one version on, inside the transaction that opens the store, so a
store is never left half-migrated. Stores written before versioning (version 0)
gain the columns they lack; no row is ever rewritten.
"""

import sqlite3

TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
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
    error TEXT
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

# Columns added to `runs` before the store had a version, in the order they came.
COLUMNS_BEFORE_VERSIONING = (
    ("pid_started", "TEXT"),  # when the run's process started: a reused pid is not the training
    ("kind", "TEXT NOT NULL DEFAULT 'train'"),
    ("parent_id", "INTEGER"),
    ("repeats", "INTEGER"),
    ("scores_json", "TEXT"),
    ("seeds_mean", "REAL"),
    ("seeds_std", "REAL"),
)


def to_version_1(db: sqlite3.Connection) -> None:
    """The tables as they stood when versioning began."""
    for statement in TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for name, definition in COLUMNS_BEFORE_VERSIONING:
        if name not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {definition}")


def to_version_2(db: sqlite3.Connection) -> None:
    """Owners: who started each run (NULL: this machine's own user, as every run before sharing),
    the people of a class, each with the hash of the password that keeps their name theirs, and
    who is signed in."""
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN owner_name TEXT")
    db.execute("""CREATE TABLE IF NOT EXISTS people (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    )""")
    # A browser session's sign-in: signing out ends every one of that person's, in every tab.
    db.execute("""CREATE TABLE IF NOT EXISTS sign_ins (
        token TEXT PRIMARY KEY,
        person_id TEXT NOT NULL,
        name TEXT NOT NULL,
        admin INTEGER NOT NULL,
        created_at REAL NOT NULL
    )""")


def to_version_3(db: sqlite3.Connection) -> None:
    """Searches: a search is a run of kind 'search' holding its space; its trials are runs of kind 'trial'."""
    db.execute("ALTER TABLE runs ADD COLUMN space_json TEXT")


def to_version_4(db: sqlite3.Connection) -> None:
    """Which Keras backend a run asked for and which trained it, on which device (CPU model or GPU name).
    Runs trained before keep them empty (TensorFlow was the only backend then; no row is rewritten)."""
    db.execute("ALTER TABLE runs ADD COLUMN backend_setting TEXT")  # auto, tensorflow or jax
    db.execute("ALTER TABLE runs ADD COLUMN backend TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN device TEXT")


# MIGRATIONS[i] takes a store from version i to version i + 1.
MIGRATIONS = (to_version_1, to_version_2, to_version_3, to_version_4)
VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the store in db (inside an open write transaction) to VERSION; returns the version it had.

    Raises ValueError for a store written by a newer version of the app, which this one must not touch.
    """
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > VERSION:
        raise ValueError(f"it was written by a newer version of Fashion-MNIST Studio (store version {found}, "
                         f"this version knows up to {VERSION}): update the app")
    for migration in MIGRATIONS[found:]:
        migration(db)
    if found != VERSION:
        db.execute(f"PRAGMA user_version = {VERSION}")
    return found

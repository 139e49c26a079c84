"""The run store's tables, defined once: SQLAlchemy metadata for SQLite (the embedded default) and
PostgreSQL (FMNIST_DB).

A new store is created from these tables; a store written before is brought to them by the
migrations in fmnist/migrations (Alembic), which run as the store opens (fmnist.migrations.upgrade).
A change here needs a new revision there that makes the same change to existing stores;
tests/test_schema.py checks that a migrated store and a new one have the same tables.

What a run is (its kinds, statuses and what its settings and result hold) is fmnist.runs'.
"""

import sqlalchemy as sa

metadata = sa.MetaData()
# 64 bits, enough for a timestamp: PostgreSQL's DOUBLE PRECISION (its REAL has 32), SQLite's REAL.
REAL = sa.Double().with_variant(sa.REAL(), "sqlite")

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
    sa.Column("epoch", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("step", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("steps_per_epoch", sa.Integer),
    sa.Column("samples_per_s", REAL),
    sa.Column("updated_at", REAL),
    sa.Column("stop_requested", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("test_loss", REAL),
    sa.Column("test_acc", REAL),
    sa.Column("train_s", REAL),
    sa.Column("best_val_acc", REAL),
    sa.Column("error", sa.Text),
    sa.Column("pid_started", sa.Text),  # when the run's process started: a reused pid is not the training
    sa.Column("kind", sa.Text, nullable=False, server_default="train"),
    sa.Column("parent_id", sa.Integer),  # the run a job repeats, the search a trial belongs to
    sa.Column("owner", sa.Text),  # who started it; NULL: this machine's own user
    sa.Column("owner_name", sa.Text),
    sa.Column("backend_setting", sa.Text),  # auto, tensorflow or jax
    sa.Column("backend", sa.Text),
    sa.Column("device", sa.Text),
    sa.Column("cluster_job", sa.Text),  # the Ray job it was submitted as; NULL: a local process
    # What only some kinds of run have, as JSON objects (fmnist.runs.Run.settings / .result): a
    # kind's inputs (a search's space, a job's repeats) and its outputs (a job's scores, mean and
    # spread; on the run a job repeats, that mean and spread under the job's kind).
    sa.Column("settings_json", sa.Text),
    sa.Column("result_json", sa.Text),
    sa.Column("queue", sa.Text, nullable=False, server_default="training"),  # the queue it waits in for a slot
    sqlite_autoincrement=True,
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

# The people of a class and who is signed in (fmnist.people): in the same database and the same
# migration history as the runs, since they are created and migrated as the store opens.
people = sa.Table(
    "people", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
    sa.Column("name_key", sa.Text),
    sa.Column("retired_at", REAL),
)

# A browser session's sign-in: signing out ends every one of that person's, in every tab.
sign_ins = sa.Table(
    "sign_ins", metadata,
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("person_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("admin", sa.Integer, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
)

# A class challenge (fmnist.challenges): its constraints on a run (NULL: none), its deadline (UTC, seconds
# since the epoch), how many runs each person may submit, who opened it, and the seed of its split of
# the test images into a public and a private part.
challenges = sa.Table(
    "challenges", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("max_params", sa.Integer),
    sa.Column("max_epochs", sa.Integer),
    sa.Column("max_images", sa.Integer),
    sa.Column("max_minutes", sa.Integer),
    sa.Column("deadline", REAL, nullable=False),
    sa.Column("submissions_per_person", sa.Integer, nullable=False),
    sa.Column("opened_by", sa.Text, nullable=False),
    sa.Column("opened_by_name", sa.Text, nullable=False),
    sa.Column("created_at", REAL, nullable=False),
    sa.Column("closed_at", REAL),  # closed early by its opener or a teacher: the deadline came then
    sa.Column("split_seed", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# A run submitted to a challenge, scored on each part of the test images as it was submitted (a run's
# test probabilities never change); kept when the run is deleted, with the name and size it had.
challenge_submissions = sa.Table(
    "challenge_submissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("challenge_id", sa.Integer, sa.ForeignKey("challenges.id", ondelete="CASCADE"), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("run_name", sa.Text, nullable=False),
    sa.Column("params", sa.Integer, nullable=False),
    sa.Column("person_id", sa.Text, nullable=False),
    sa.Column("person_name", sa.Text, nullable=False),
    sa.Column("submitted_at", REAL, nullable=False),
    sa.Column("public_acc", REAL, nullable=False),
    sa.Column("private_acc", REAL, nullable=False),
    sa.UniqueConstraint("challenge_id", "run_id"),
    sqlite_autoincrement=True,
)

# The class's own settings that the app changes as it runs, a key and its JSON value each (fmnist.store:
# RunStore.setting): "queue_paused", who paused the queue and when (RunStore.claim_slot starts nothing then).
app_settings = sa.Table(
    "app_settings", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", REAL, nullable=False),
)

"""What only some kinds of run have moves out of its own columns into two JSON objects.

A kind's inputs go to settings_json (a search's space, a cv or seeds job's repeats) and its outputs
to result_json (a job's scores, mean and spread; on the run a job repeats, {"cv": {"mean", "std",
"job"}} or {"seeds": {...}}, as the old cv_* and seeds_* columns held them). queue says which queue
a run waits in: "search" for searches (one at a time), "training" for every other. Every row's
values are copied, then the old columns are dropped.

The columns are dropped in place (ALTER TABLE ... DROP COLUMN, SQLite 3.35 or later), not by
Alembic's batch copy-and-move: that drops the old runs table, and with foreign keys on (they cannot
be turned off inside the transaction that opens the store) dropping it would cascade and delete
every run's epochs and batches.

Revision ID: 0002_settings_result
Revises: 0001_legacy
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002_settings_result"
down_revision = "0001_legacy"
branch_labels = None
depends_on = None

JOB_KINDS = ("cv", "seeds")  # a job's mean and spread went to <kind>_mean and <kind>_std, on the job and on the run it repeats
SEARCH = "search"
OLD_NUMBERS = ("cv_mean", "cv_std", "seeds_mean", "seeds_std")
OLD_COLUMNS = ("repeats", "scores_json", "space_json", *OLD_NUMBERS)
FLOAT = sa.Double().with_variant(sa.REAL(), "sqlite")

runs = sa.table("runs", sa.column("id"), sa.column("kind"), sa.column("parent_id"), sa.column("settings_json"),
                sa.column("result_json"), sa.column("queue"), *(sa.column(name) for name in OLD_COLUMNS))


def settings_and_result(row, job_of) -> tuple[dict, dict]:
    """A run's settings and result from its old columns; job_of(run, kind, mean, std): the job whose scores they are."""
    settings, result = {}, {}
    if row.space_json is not None:
        settings["space"] = json.loads(row.space_json)
    if row.repeats is not None:
        settings["repeats"] = row.repeats
    if row.scores_json is not None:
        result["scores"] = json.loads(row.scores_json)
    for kind in JOB_KINDS:
        mean, std = getattr(row, f"{kind}_mean"), getattr(row, f"{kind}_std")
        if mean is None and std is None:
            continue
        if row.kind == kind:
            result |= {"mean": mean, "std": std}
        else:
            result[kind] = {"mean": mean, "std": std, "job": job_of(row.id, kind, mean, std)}
    return settings, result


def upgrade() -> None:
    op.add_column("runs", sa.Column("settings_json", sa.Text))
    op.add_column("runs", sa.Column("result_json", sa.Text))
    op.add_column("runs", sa.Column("queue", sa.Text, nullable=False, server_default="training"))
    db = op.get_bind()
    rows = db.execute(sa.select(runs.c.id, runs.c.kind, runs.c.parent_id, *(runs.c[name] for name in OLD_COLUMNS))
                      .order_by(runs.c.id)).fetchall()

    def job_of(run_id: int, kind: str, mean: float | None, std: float | None) -> int | None:
        """The newest job of that kind on the run whose own mean and spread the run shows (each job
        wrote them on the run as it went), else its newest job of that kind."""
        jobs = [row for row in rows if row.parent_id == run_id and row.kind == kind]
        same = [job for job in jobs if (getattr(job, f"{kind}_mean"), getattr(job, f"{kind}_std")) == (mean, std)]
        candidates = same or jobs
        return candidates[-1].id if candidates else None

    values = []
    for row in rows:
        settings, result = settings_and_result(row, job_of)
        if settings or result:
            values.append({"run_id": row.id, "settings": json.dumps(settings) if settings else None,
                           "result": json.dumps(result) if result else None})
    if values:
        db.execute(runs.update().where(runs.c.id == sa.bindparam("run_id"))
                   .values(settings_json=sa.bindparam("settings"), result_json=sa.bindparam("result")), values)
    db.execute(runs.update().where(runs.c.kind == SEARCH).values(queue=SEARCH))
    for name in OLD_COLUMNS:
        op.drop_column("runs", name)


def downgrade() -> None:
    """Back to the old columns, from the JSON (for a store that must be opened by the version before)."""
    for name, column_type in (("repeats", sa.Integer), ("scores_json", sa.Text), ("space_json", sa.Text)):
        op.add_column("runs", sa.Column(name, column_type))
    for name in OLD_NUMBERS:
        op.add_column("runs", sa.Column(name, FLOAT))
    db = op.get_bind()
    values = []
    for row in db.execute(sa.select(runs.c.id, runs.c.kind, runs.c.settings_json, runs.c.result_json)).fetchall():
        settings, result = json.loads(row.settings_json or "{}"), json.loads(row.result_json or "{}")
        old = {name: None for name in OLD_COLUMNS}
        old["space_json"] = json.dumps(settings["space"]) if "space" in settings else None
        old["repeats"] = settings.get("repeats")
        old["scores_json"] = json.dumps(result["scores"]) if "scores" in result else None
        for kind in JOB_KINDS:
            summary = result if row.kind == kind else result.get(kind, {})
            old[f"{kind}_mean"], old[f"{kind}_std"] = summary.get("mean"), summary.get("std")
        values.append({"run_id": row.id, **{f"old_{name}": value for name, value in old.items()}})
    if values:
        db.execute(runs.update().where(runs.c.id == sa.bindparam("run_id"))
                   .values({name: sa.bindparam(f"old_{name}") for name in OLD_COLUMNS}), values)
    for name in ("settings_json", "result_json", "queue"):
        op.drop_column("runs", name)

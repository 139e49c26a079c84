"""Class challenges (fmnist.challenges): the challenges a teacher opens and the runs submitted to them,
each scored on the public and the private part of the test images.

Revision ID: 0004_challenges
Revises: 0003_people_name_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_challenges"
down_revision = "0003_people_name_key"
branch_labels = None
depends_on = None

FLOAT = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("max_params", sa.Integer),
        sa.Column("max_epochs", sa.Integer),
        sa.Column("max_images", sa.Integer),
        sa.Column("max_minutes", sa.Integer),
        sa.Column("deadline", FLOAT, nullable=False),
        sa.Column("submissions_per_person", sa.Integer, nullable=False),
        sa.Column("opened_by", sa.Text, nullable=False),
        sa.Column("opened_by_name", sa.Text, nullable=False),
        sa.Column("created_at", FLOAT, nullable=False),
        sa.Column("closed_at", FLOAT),
        sa.Column("split_seed", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "challenge_submissions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("challenge_id", sa.Integer, sa.ForeignKey("challenges.id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("run_name", sa.Text, nullable=False),
        sa.Column("params", sa.Integer, nullable=False),
        sa.Column("person_id", sa.Text, nullable=False),
        sa.Column("person_name", sa.Text, nullable=False),
        sa.Column("submitted_at", FLOAT, nullable=False),
        sa.Column("public_acc", FLOAT, nullable=False),
        sa.Column("private_acc", FLOAT, nullable=False),
        sa.UniqueConstraint("challenge_id", "run_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("challenge_submissions")
    op.drop_table("challenges")

"""The class's settings the app changes as it runs (fmnist.schema.app_settings): a key and its JSON value
each; the first is "queue_paused", set while a teacher has paused the queue (fmnist.store.RunStore.claim_slot).

Revision ID: 0005_app_settings
Revises: 0004_challenges
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_app_settings"
down_revision = "0004_challenges"
branch_labels = None
depends_on = None

FLOAT = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "app_settings",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", FLOAT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_settings")

"""The store as the app before Alembic left it: legacy versions 0 to 5.

Runs the legacy migrations from the version the store records (fmnist.migrations.legacy says why
they are kept as they were). A new store never comes through here: it is created from the
metadata and stamped with the newest revision.

Revision ID: 0001_legacy
Revises:
"""

from alembic import op

from fmnist.migrations import legacy

revision = "0001_legacy"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    legacy.migrate(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("a store is never taken back to before its first revision")

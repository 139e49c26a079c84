"""People are no longer their name: a person's id stays with their runs when `forget-person` frees the
name (retired_at set), and the next person to sign in under it gets an id of their own (fmnist.access).
name_key is the casefolded name that makes two spellings one person; NULL in rows written before,
whose id is "class:" followed by it.

Revision ID: 0003_people_name_key
Revises: 0002_settings_result
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_people_name_key"
down_revision = "0002_settings_result"
branch_labels = None
depends_on = None

FLOAT = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    have = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("people")}
    if "name_key" not in have:
        op.add_column("people", sa.Column("name_key", sa.Text()))
    if "retired_at" not in have:
        op.add_column("people", sa.Column("retired_at", FLOAT))


def downgrade() -> None:
    op.drop_column("people", "retired_at")
    op.drop_column("people", "name_key")

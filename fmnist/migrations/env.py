"""Alembic's environment for the run store: migrate the connection fmnist.migrations.upgrade hands
over, inside the transaction it opened (so a store is never left half-migrated)."""

from alembic import context

from fmnist.migrations import VERSION_TABLE
from fmnist.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the run store's migrations run as a store opens (fmnist.store.RunStore), on its connection")
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()

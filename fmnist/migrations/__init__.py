"""The run store's migrations (Alembic), run as a store opens, inside the transaction that opens it.

Three kinds of database arrive here:
- an empty one: the tables are created from fmnist.schema's metadata and stamped with the newest
  revision (nothing to migrate);
- a store written before Alembic (legacy versions 0 to 5, fmnist.migrations.legacy): the first
  revision brings it to version 5 by the code that always did, the later ones go on from there;
- a store Alembic manages: brought to the newest revision; one stamped with a revision this app
  does not know was written by a newer version, and is refused untouched (NewerStore).

Alembic records the revision in its own table, VERSION_TABLE, not its default alembic_version:
Optuna's study storage (fmnist.studies) keeps its own Alembic history in the same PostgreSQL
database under that name. The legacy version is then set to LEGACY_FENCE, so that an app from
before Alembic refuses the store ("written by a newer version") instead of migrating it again.
No alembic.ini: the script folder is this package, and the connection is handed to env.py
through the configuration's attributes.
"""

from functools import cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

import fmnist.migrations.legacy as legacy  # not `from fmnist.migrations import`: this module is fmnist.migrations
from fmnist import schema

VERSION_TABLE = "fmnist_schema_revision"
LEGACY_FENCE = legacy.VERSION + 1
SCRIPT_LOCATION = "fmnist:migrations"


class NewerStore(Exception):
    """The store was written by a newer version of the app; the message says so and what to do."""


def config(db: Connection | None = None) -> Config:
    """Alembic's configuration without an ini file; db: the open connection env.py migrates."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", SCRIPT_LOCATION)
    alembic_config.set_main_option("file_template", "%%(rev)s")  # a new revision's file is named by its id: 0003_what.py
    alembic_config.attributes["connection"] = db
    return alembic_config


@cache
def scripts() -> ScriptDirectory:
    """The revisions (read once per process)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    return scripts().get_current_head()


def current_revision(db: Connection) -> str | None:
    """The store's Alembic revision; None for an empty database or a store from before Alembic."""
    return MigrationContext.configure(db, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(db: Connection) -> str | None:
    """Bring the store in db (inside an open write transaction) to the newest revision; returns the
    revision it had (None: empty, or written before Alembic). NewerStore for an unknown revision."""
    found = current_revision(db)
    if found is not None:
        try:
            scripts().get_revision(found)
        except CommandError:
            raise NewerStore(f"it was written by a newer version of Fashion-MNIST Studio (schema revision {found!r}, this "
                             f"version knows up to {head()!r}): update the app") from None
        if found == head():
            return found
    elif not sa.inspect(db).has_table("runs"):
        legacy_version = legacy.stored_version(db)
        if legacy_version > legacy.VERSION:
            raise newer_legacy_store(legacy_version)
        schema.metadata.create_all(db)
        MigrationContext.configure(db, opts={"version_table": VERSION_TABLE}).stamp(scripts(), "head")
        legacy.record_version(db, LEGACY_FENCE)
        return None
    else:
        legacy_version = legacy.stored_version(db)
        if legacy_version > legacy.VERSION:
            raise newer_legacy_store(legacy_version)
    command.upgrade(config(db), "head")
    legacy.record_version(db, LEGACY_FENCE)
    return found


def newer_legacy_store(version: int) -> NewerStore:
    return NewerStore(f"it was written by a newer version of Fashion-MNIST Studio (store version {version}, without a "
                      "schema revision this version knows): update the app")

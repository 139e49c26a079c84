"""The run store's schema, defined once (fmnist.schema) and migrated by Alembic (fmnist/migrations):
a store written by the app before Alembic opens and reads the same, on SQLite and PostgreSQL, from
every legacy version; a new store and a migrated one have the same tables; a store from a newer
version is refused untouched.

tests/data/store_v5 is a store the app wrote before Alembic (tests/data/make_store_v5.py), with
what that app read from it."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fmnist import migrations, schema
from fmnist.database import database_url
from fmnist.home import StoreError
from fmnist.migrations import legacy
from fmnist.models import dense_spec
from fmnist.store import RunStore

STORE_V5 = Path(__file__).resolve().parent / "data" / "store_v5"
EXPECTED = json.loads((STORE_V5 / "expected.json").read_text())
PER_KIND_COLUMNS = {"cv_mean", "cv_std", "seeds_mean", "seeds_std", "scores_json", "space_json", "repeats"}
LEGACY_TABLES = ("runs", "epochs", "batches", "people", "sign_ins")


def store_v5_in(home: Path) -> Path:
    """A copy of the store written before Alembic, as FMNIST_HOME's store (the original is never touched)."""
    home.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(STORE_V5 / "runs.sqlite", home / "runs.sqlite"))


def as_json(value):
    """As expected.json holds it (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value, default=str))


def assert_reads_as_before(store: RunStore) -> None:
    """Every run, curve, queue place and sign-in the app before Alembic read from the store."""
    found = store.list_runs()
    assert [run.id for run in found] == [run["id"] for run in EXPECTED["runs"]]
    for run, before in zip(found, EXPECTED["runs"]):
        now = {name: getattr(run, name) for name in before if name != "summary"}
        assert as_json(now) == {name: value for name, value in before.items() if name != "summary"}, run.name
        assert as_json(run.summary()) == before["summary"], run.name
    for run in found:
        assert as_json(store.epochs(run.id)) == EXPECTED["epochs"][str(run.id)]
        assert as_json(store.batches(run.id)) == EXPECTED["batches"][str(run.id)]
    assert {str(run_id): store.queue_position(int(run_id)) for run_id in EXPECTED["queue_positions"]} == EXPECTED["queue_positions"]
    # people from before name_key are found by the name their id holds (fmnist.people), with the same name and hash
    assert as_json(store.people.person("ada")) == ["class:ada", *EXPECTED["person"]]
    assert as_json(store.people.signed_in("tab-token")) == EXPECTED["signed_in"]


def runs_columns(store: RunStore) -> list[str]:
    with store.connect(write=False) as db:
        return [column["name"] for column in sa.inspect(db).get_columns("runs")]


def schema_differences(db) -> list:
    """What Alembic finds between the store's tables and the metadata (its own version tables aside)."""
    def ours(name, type_, _parent_names) -> bool:
        return type_ != "table" or name not in (migrations.VERSION_TABLE, "store_version")

    context = MigrationContext.configure(db, opts={"compare_type": True, "compare_server_default": True, "include_name": ours})
    differences = compare_metadata(context, schema.metadata)
    if db.dialect.name == "sqlite":
        differences = [diff for diff in differences if not sqlite_reflection_quirk(diff)]
        for table in ("epochs", "batches"):  # what the quirk hides, read from SQLite itself
            assert [(row[2], row[3], row[4], row[6]) for row in db.exec_driver_sql(f"PRAGMA foreign_key_list({table})")] == \
                [("runs", "run_id", "id", "CASCADE")], table
    return differences


def sqlite_reflection_quirk(diff) -> bool:
    """What SQLite reports differently of the same tables written by the legacy DDL: a primary key
    without NOT NULL (SQLite's own rule, every row has a key anyway), and a foreign key declared inline,
    whose ON DELETE CASCADE SQLAlchemy does not read back (checked by PRAGMA instead)."""
    if isinstance(diff, list):
        (what, _, table, column, *_), = diff
        return what == "modify_nullable" and schema.metadata.tables[table].c[column].primary_key
    return diff[0] in ("remove_fk", "add_fk") and diff[1].parent.name in ("epochs", "batches")


def test_the_fixture_is_a_legacy_store_with_per_kind_columns():
    db = sqlite3.connect(f"file:{STORE_V5 / 'runs.sqlite'}?mode=ro", uri=True)
    assert db.execute("PRAGMA user_version").fetchone()[0] == legacy.VERSION
    assert PER_KIND_COLUMNS <= {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert {row[0] for row in db.execute("SELECT kind FROM runs")} == {"train", "cv", "seeds", "search", "trial"}
    db.close()


def test_a_store_from_before_alembic_opens_and_reads_the_same(home):
    store_v5_in(home)
    store = RunStore(home)
    assert_reads_as_before(store)
    assert not PER_KIND_COLUMNS & set(runs_columns(store)), "no per-kind column left in runs"
    with store.connect(write=False) as db:
        assert migrations.current_revision(db) == migrations.head()
        assert legacy.stored_version(db) == migrations.LEGACY_FENCE > legacy.VERSION, "an app from before Alembic refuses it"
    trained, first_cv, second_cv, seeds = (store.get(run_id) for run_id in (1, 2, 3, 4))
    assert trained.result["cv"]["job"] == second_cv.id, "the job whose mean the run showed"
    assert trained.result["seeds"] == {"mean": seeds.seeds_mean, "std": seeds.seeds_std, "job": seeds.id}
    assert (first_cv.settings, first_cv.result["scores"]) == ({"repeats": 3}, [0.75, 0.77, 0.76])
    assert [run.queue for run in store.list_runs()].count("search") == 2
    assert_reads_as_before(RunStore(home))  # opening again changes nothing


def test_a_new_store_and_a_migrated_one_have_the_same_tables(home, tmp_path):
    """The schema is defined once: the migrations bring an old store to exactly the metadata."""
    new = RunStore(tmp_path / "new")
    store_v5_in(home)
    migrated = RunStore(home)
    assert runs_columns(new) == runs_columns(migrated)
    assert not PER_KIND_COLUMNS & set(runs_columns(new))
    for store in (new, migrated):
        with store.connect(write=False) as db:
            assert schema_differences(db) == [], store.home


@pytest.mark.parametrize("version", range(legacy.VERSION + 1))
def test_every_legacy_version_migrates_and_reads_the_same(home, version):
    """A store as each legacy version left it: its runs keep their kind's numbers."""
    home.mkdir(parents=True)
    engine = sa.create_engine(f"sqlite:///{home / 'runs.sqlite'}")
    with engine.begin() as db:
        if version == 0:  # before versioning: the first tables, then columns came one by one
            for statement in legacy.TABLES.split(";"):
                if statement.strip():
                    legacy.ddl(db, statement)
        else:
            legacy.migrate(db, to_version=version)
        have = {column["name"] for column in sa.inspect(db).get_columns("runs")}
        spec = json.dumps(dense_spec([16]).to_dict())
        db.execute(sa.text("INSERT INTO runs (name, spec_json, status, created_at, params, test_acc, cv_mean, cv_std) "
                           "VALUES ('trained', :spec, 'finished', 1.0, 12730, 0.88, 0.86, 0.01)"), {"spec": spec})
        if "scores_json" in have:
            db.execute(sa.text("INSERT INTO runs (name, spec_json, status, created_at, params, kind, parent_id, repeats, scores_json, "
                               "cv_mean, cv_std) VALUES ('cv', :spec, 'finished', 2.0, 12730, 'cv', 1, 2, '[0.85, 0.87]', 0.86, 0.01)"),
                       {"spec": spec})
        if "space_json" in have:
            db.execute(sa.text("INSERT INTO runs (name, spec_json, status, created_at, params, kind, space_json) "
                               "VALUES ('search', :spec, 'cancelled', 3.0, 12730, 'search', '{\"trials\": 4}')"), {"spec": spec})
    engine.dispose()

    runs = {run.name: run for run in RunStore(home).list_runs()}
    trained = runs["trained"]
    assert (trained.kind, trained.test_acc, trained.cv_mean, trained.cv_std, trained.seeds_mean, trained.scores) == \
        ("train", 0.88, 0.86, 0.01, None, [])
    assert trained.summary()["cv_mean"] == 0.86 and trained.queue == "training"
    if version >= 1:
        job = runs["cv"]
        assert (job.repeats, job.scores, job.cv_mean, job.cv_std, job.parent_id) == (2, [0.85, 0.87], 0.86, 0.01, trained.id)
        assert trained.result["cv"]["job"] == job.id
    else:
        assert trained.result["cv"]["job"] is None, "a store from before jobs: the mean came from nowhere we know"
    if version >= 3:
        assert (runs["search"].space, runs["search"].space_json, runs["search"].queue) == ({"trials": 4}, '{"trials": 4}', "search")


def test_a_migration_back_restores_the_old_columns(home):
    """The second revision's downgrade, for a store that must go back to the app before it."""
    db_path = store_v5_in(home)
    before = sqlite3.connect(STORE_V5 / "runs.sqlite").execute(
        "SELECT id, repeats, scores_json, space_json, cv_mean, cv_std, seeds_mean, seeds_std FROM runs ORDER BY id").fetchall()
    store = RunStore(home)
    with store.connect() as db:
        command.downgrade(migrations.config(db), "0001_legacy")
    after = sqlite3.connect(db_path).execute(
        "SELECT id, repeats, scores_json, space_json, cv_mean, cv_std, seeds_mean, seeds_std FROM runs ORDER BY id").fetchall()
    assert after == before
    assert_reads_as_before(RunStore(home)), "and up again"


def test_a_store_from_a_newer_version_is_refused_and_left_as_it_is(home):
    RunStore(home).create_run(dense_spec([16]), name="kept")
    db = sqlite3.connect(home / "runs.sqlite")
    db.execute(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'ffff_from_the_future'")
    db.commit()
    before = (home / "runs.sqlite").read_bytes()
    with pytest.raises(StoreError, match=r"written by a newer version of Fashion-MNIST Studio \(schema revision 'ffff_from_the_future'"
                                         r".*update the app\. It was left as it is"):
        RunStore(home)
    assert (home / "runs.sqlite").read_bytes() == before

    other = home.parent / "legacy-newer"
    other.mkdir()
    db = sqlite3.connect(other / "runs.sqlite")  # a legacy version this app never knew, without a revision
    db.execute(f"PRAGMA user_version = {migrations.LEGACY_FENCE + 1}")
    db.commit()
    with pytest.raises(StoreError, match="written by a newer version.*update the app"):
        RunStore(other)


def copy_rows(source: Path, url: str) -> None:
    """Every row of the legacy store's tables into a PostgreSQL database at the same legacy version."""
    engine = sa.create_engine(database_url(url))
    old = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    old.row_factory = sqlite3.Row
    with engine.begin() as db:
        legacy.migrate(db)
        for table in LEGACY_TABLES:
            rows = [dict(row) for row in old.execute(f"SELECT * FROM {table}")]
            if rows:
                db.execute(sa.table(table, *(sa.column(name) for name in rows[0])).insert(), rows)
        db.exec_driver_sql("SELECT setval('runs_id_seq', (SELECT MAX(id) FROM runs))")
    engine.dispose()


def test_a_postgres_store_from_before_alembic_opens_and_reads_the_same(home, postgres):
    url = postgres.new_database()
    copy_rows(STORE_V5 / "runs.sqlite", url)
    store = RunStore(home, url=database_url(url))
    assert_reads_as_before(store)
    assert not PER_KIND_COLUMNS & set(runs_columns(store))
    with store.connect(write=False) as db:
        assert migrations.current_revision(db) == migrations.head()
        assert db.execute(sa.text("SELECT version FROM store_version")).scalars().all() == [migrations.LEGACY_FENCE]
        assert schema_differences(db) == []
    assert store.create_run(dense_spec([16])) == EXPECTED["runs"][-1]["id"] + 1, "new runs number on"

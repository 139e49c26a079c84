"""The run store on a real PostgreSQL server (FMNIST_DB): what only a database server does. The store's
own suite runs on both databases (tests/test_store.py); this is the URL, the schema, the faults
(a server that is not there, one restarted under a training) and the searches' studies beside the runs."""

import json
import os
import subprocess
import sys

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from fmnist import migrations, schema
from fmnist.database import database_url
from fmnist.home import StoreError
from fmnist.models import PRESETS
from fmnist.search_space import SearchSpace
from fmnist.store import RunStore
from fmnist.studies import load_study, open_study, storage

from helpers import APP, ROOT, run_cli, wait_until
from servers import free_port

SPEC = PRESETS["Seed D: 128-64"]


def app_error() -> str:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return " ".join(e.value for e in at.error)


def test_the_plain_url_people_write_runs_on_psycopg_3():
    assert database_url("postgresql://ada:secret@db.school:5433/fmnist").render_as_string(hide_password=False) == \
        "postgresql+psycopg://ada:secret@db.school:5433/fmnist"
    assert database_url("postgres://ada@db/fmnist").drivername == "postgresql+psycopg"
    with pytest.raises(StoreError, match="FMNIST_DB=mysql://ada:\\*\\*\\*@db/fmnist: the run store runs on PostgreSQL"):
        database_url("mysql://ada:secret@db/fmnist")
    with pytest.raises(StoreError, match="FMNIST_DB='not a url' is not a database URL"):
        database_url("not a url")


def test_an_unreachable_database_is_one_message_naming_fmnist_db_and_nothing_is_written(home, monkeypatch):
    monkeypatch.setenv("FMNIST_DB", f"postgresql://fmnist:secret-password@127.0.0.1:{free_port()}/fmnist")
    result = run_cli("runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "FMNIST_DB=postgresql://fmnist:***@127.0.0.1" in result.stderr and "cannot be reached" in result.stderr, result.stderr
    assert "secret-password" not in result.stderr
    message = app_error()
    assert "cannot be reached" in message and "FMNIST_DB=" in message and "secret-password" not in message
    assert not (home / "runs.sqlite").exists(), "never a SQLite store instead, by accident"


def test_a_new_postgres_store_is_at_the_current_version_and_a_newer_one_is_left_alone(home, postgres):
    url = postgres.new_database()
    store = RunStore(url=database_url(url))
    run_id = store.create_run(SPEC)
    RunStore(url=database_url(url))  # opening again changes nothing
    with psycopg.connect(url) as db:
        assert db.execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}").fetchall() == [(migrations.head(),)]
        assert db.execute("SELECT version FROM store_version").fetchall() == [(migrations.LEGACY_FENCE,)], "an older app refuses it"
        columns = {row[0] for row in db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'")}
        assert columns == {column.name for column in schema.runs.columns}
        assert db.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'runs' AND column_name = 'created_at'"
                          ).fetchone() == ("double precision",), "a timestamp needs 64 bits"
        db.execute(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'ffff_from_the_future'")
    with pytest.raises(StoreError, match="newer version"):
        RunStore(url=database_url(url))
    with psycopg.connect(url) as db:
        assert db.execute("SELECT id FROM runs").fetchall() == [(run_id,)]


def test_a_search_study_lives_in_the_same_database(home, postgres, monkeypatch):
    monkeypatch.setenv("FMNIST_DB", postgres.new_database())
    store = RunStore()
    assert type(storage(store)).__name__ == "RDBStorage"
    space = SearchSpace()
    study = open_study(store, 7, space)
    trial = study.ask()
    study.tell(trial, 0.8)
    assert load_study(RunStore(), 7).best_value == 0.8, "another process finds it"
    assert not (home / "searches.journal").exists()


def train_in_background(*flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmnist", "train", "--layers", "32", "--batch-size", "32", *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_postgres_restarted_mid_training_the_run_goes_on_and_a_longer_outage_interrupts_it(home, postgres, monkeypatch):
    monkeypatch.setenv("FMNIST_DB", postgres.new_database())
    store = RunStore()
    finished = store.create_run(SPEC, name="finished before")
    store.finish(finished, "finished", test_acc=0.88)

    training = train_in_background("--epochs", "3", "--limit", "6000")
    wait_until(lambda: any(run.step > 0 for run in store.list_runs(statuses=("running",))), timeout=120, message="training")
    postgres.restart()  # every connection of the training's is cut
    out, err = training.communicate(timeout=240)
    assert training.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and len(store.epochs(summary["run_id"])) == 3

    # A longer outage: a writer (standing in for a training's process) gives up after FMNIST_DB_WAIT_S,
    # its process ends, and the reaper marks its run interrupted once the store is back.
    writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env={**os.environ, "FMNIST_DB_WAIT_S": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: any(run.step > 0 for run in store.list_runs(statuses=("running",))), timeout=60, message="the writer")
    postgres.stop()
    try:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 1 and "StoreUnreachable" in err and "cannot be reached" in err, err
    finally:
        postgres.start()
    wait_until(lambda: run_cli("runs").returncode == 0, timeout=30, message="the reaper")  # the CLI marks dead runs
    statuses = {run.name: (run.status, run.test_acc) for run in RunStore().list_runs()}
    assert statuses["finished before"] == ("finished", 0.88), "a finished run is never lost"
    assert [status for name, (status, _) in statuses.items() if name != "finished before"] == ["finished", "interrupted"]


# A process that claims a queued run and writes its progress as a training does, until it cannot.
WRITER = """
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.worker import try_start
store = RunStore()
run_id = store.create_run(dense_spec([16]), name="writer")
try_start(store, run_id, max_parallel=None)
step = 0
while True:
    step += 1
    store.record_progress(run_id, 1, step, 1000, 100.0, [(1, step, 1.0, 0.5)])
"""

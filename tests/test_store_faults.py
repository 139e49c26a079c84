"""A store or a folder that cannot be used: one clear message in the CLI and the app, nothing
overwritten; a cache that cannot be written costs time, not the run; a model that cannot be
written fails its run with the real cause and leaves no half-written file."""

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fmnist import data, migrations
from fmnist.home import StoreError
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

from helpers import APP, run_cli

DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")


def app_error(home: Path) -> str:
    """The app's one message with FMNIST_HOME=home (no traceback)."""
    os.environ["FMNIST_HOME"] = str(home)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return " ".join(e.value for e in at.error)


def test_a_store_that_is_not_a_database_is_named_and_left_alone(home):
    home.mkdir(parents=True)
    damaged = home / "runs.sqlite"
    damaged.write_bytes(b"this is a bad copy, not SQLite" * 100)
    before = damaged.read_bytes()

    result = run_cli("runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(damaged) in result.stderr and "move it aside" in result.stderr, result.stderr
    with pytest.raises(StoreError, match="not a database"):
        RunStore()
    message = app_error(home)
    assert str(damaged) in message and "move it aside" in message
    assert damaged.read_bytes() == before, "never repaired or overwritten"


def test_fmnist_home_naming_a_file(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "runs.txt"
    not_a_folder.write_text("notes")
    monkeypatch.setenv("FMNIST_HOME", str(not_a_folder))

    result = run_cli("runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"FMNIST_HOME={not_a_folder} is a file, not a folder" in result.stderr, result.stderr
    assert f"FMNIST_HOME={not_a_folder} is a file" in app_error(not_a_folder)
    assert not_a_folder.read_text() == "notes"


def test_a_store_from_a_newer_version_is_not_touched(home):
    RunStore()
    db = sqlite3.connect(home / "runs.sqlite")
    db.execute(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'ffff_from_the_future'")
    db.commit()
    db.close()
    before = (home / "runs.sqlite").read_bytes()
    result = run_cli("runs")
    assert result.returncode == 2 and "newer version" in result.stderr and "update the app" in result.stderr, result.stderr
    assert (home / "runs.sqlite").read_bytes() == before


def test_a_new_store_is_at_the_current_version_and_an_old_one_is_migrated_once(home):
    RunStore()
    db = sqlite3.connect(home / "runs.sqlite")
    assert db.execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}").fetchall() == [(migrations.head(),)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == migrations.LEGACY_FENCE, "an app from before Alembic refuses it"
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    db.close()
    RunStore()  # opening again changes nothing
    db = sqlite3.connect(home / "runs.sqlite")
    assert [row[1] for row in db.execute("PRAGMA table_info(runs)")] == columns
    assert {"pid_started", "kind", "parent_id", "settings_json", "result_json", "queue"} <= set(columns)


@needs_dev_full
def test_a_full_disk_for_the_cache_still_loads_the_dataset(home, monkeypatch):
    """The real files, and a cache folder whose first write hits a full disk."""
    if not all((data.DEBIAN_DIR / name).is_file() for name, _, _ in data.FILES.values()):
        pytest.skip("needs Debian's dataset-fashion-mnist")
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.delenv("FMNIST_CACHE", raising=False)  # the home's own cache, not the suite's shared one
    cache = home / "cache" / f"fashion-mnist-{data.source_fingerprint(data.DEBIAN_DIR)}"
    cache.mkdir(parents=True)
    (cache / "x_train.tmp.npy").symlink_to(DEV_FULL)

    with pytest.warns(UserWarning, match="could not be saved"):
        dataset = data.load_cached(data.DEBIAN_DIR)
    assert dataset.x_train.shape == (60000, 28, 28) and dataset.y_test.shape == (10000,)
    assert "No space left on device" in dataset.note
    assert sorted(p.name for p in cache.iterdir()) == [], "no partial file and no 'done' mark"

    monkeypatch.setenv("FMNIST_DATA", str(data.DEBIAN_DIR))
    (cache / "x_train.tmp.npy").symlink_to(DEV_FULL)
    from fmnist.app.caches import get_dataset

    get_dataset.clear()  # the app's dataset is loaded once per server: this is a new server
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert any("could not be saved" in c.value for c in at.caption), "the app says why, and shows the data"
    get_dataset.clear()

    (cache / "x_train.tmp.npy").symlink_to(DEV_FULL)
    result = run_cli("train", "--layers", "16", "--epochs", "1", "--limit", "500", timeout=240)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "finished"
    assert "could not be saved" in result.stderr, "the CLI says why each start decodes again"


@needs_dev_full
def test_a_model_that_cannot_be_written_fails_its_run_with_the_real_cause(home, dataset):
    store = RunStore()
    run_id = store.create_run(dense_spec([16], epochs=1), train_limit=500)
    try_start(store, run_id, max_parallel=1)
    (store.run_dir(run_id) / "tmp-model.keras").symlink_to(DEV_FULL)

    summary = train_run(store, run_id, dataset)
    run = store.get(run_id)
    assert summary["status"] == "failed" and "No space left on device" in run.error, run.error
    files = sorted(p.name for p in store.run_dir(run_id).iterdir())
    assert "model.keras" not in files and not [f for f in files if f.startswith("tmp-")], files
    assert np.load(store.probs_path(run_id)).shape == (10000, 10), "what was written before is whole"

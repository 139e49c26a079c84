"""The run store's own suite: every test that needs a database runs on SQLite and on a real PostgreSQL
(the `database` fixture, tests/conftest.py)."""

import multiprocessing
import subprocess
import sys

import psutil
import pytest

from fmnist.models import PRESETS
from fmnist.prediction import load_model
from fmnist.runs import ModelFileError
from fmnist.schema import runs
from fmnist.store import RunStore
from fmnist.worker import process_alive, reap_dead_runs, try_start

from helpers import wait_until

SPEC = PRESETS["Seed D: 128-64"]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_create_and_read_a_run(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC, train_limit=500)
    run = store.get(run_id)
    assert (run.status, run.name, run.params, run.train_limit) == ("queued", f"run {run_id}", 109386, 500)
    assert run.spec == SPEC
    assert store.run_dir(run_id).is_dir()
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.get(run_id + 1) is None


def test_queue_starts_runs_in_order_within_the_parallel_limit(home, database):
    store = RunStore()
    first, second = store.create_run(SPEC), store.create_run(SPEC)
    assert not try_start(store, second, max_parallel=1), "the second run may not jump the queue"
    assert try_start(store, first, max_parallel=1)
    assert store.queue_position(second) == 1
    assert not try_start(store, second, max_parallel=1), "one training at a time by default"
    assert try_start(store, second, max_parallel=2)
    assert [r.status for r in store.list_runs()] == ["running", "running"]


def test_stop_cancels_a_queued_run_and_flags_a_running_one(home, database):
    store = RunStore()
    running, queued = store.create_run(SPEC), store.create_run(SPEC)
    try_start(store, running, max_parallel=1)
    assert store.request_stop(queued) == "cancelled"
    assert store.get(queued).status == "cancelled"
    assert store.request_stop(running) == "running"
    assert store.stop_requested(running)
    assert store.record_progress(running, 1, 10, 100, 1000.0, [(1, 10, 0.5, 0.8)]), "progress writes report the stop"
    with pytest.raises(KeyError):
        store.request_stop(999)


def test_runs_whose_process_died_are_marked_interrupted(home, database, monkeypatch):
    store = RunStore()
    alive = store.create_run(SPEC)  # this test process stands in for a live trainer
    try_start(store, alive, max_parallel=2)
    crashed = store.create_run(SPEC, pid=dead_pid())
    try_start(store, crashed, max_parallel=2)
    store.set_pid(crashed, dead_pid(), None)
    never_started = store.create_run(SPEC)
    queued_dead = store.create_run(SPEC, pid=dead_pid())

    assert reap_dead_runs(store) == [crashed, queued_dead], "a run without a pid gets a grace period"
    monkeypatch.setattr("fmnist.worker.PID_GRACE_S", -1.0)
    assert reap_dead_runs(store) == [never_started]
    statuses = {r.id: r.status for r in store.list_runs()}
    assert statuses == {alive: "running", crashed: "interrupted", never_started: "interrupted", queued_dead: "interrupted"}
    assert "ended without finishing" in store.get(crashed).error


def test_a_search_and_its_trial_sharing_a_dying_process_are_reaped_together(home, monkeypatch):
    """The process dies while a sweep runs: looked at once, it is taken for alive or for dead for
    both its runs, never the trial reaped and its search left running."""
    from fmnist.runs import RunKind

    store = RunStore()
    search = store.create_run(SPEC, name="search", kind=RunKind.SEARCH, queue="search")
    try_start(store, search, max_parallel=2)
    trial = store.create_run(SPEC, name="trial", kind=RunKind.TRIAL, parent_id=search)
    try_start(store, trial, max_parallel=2)
    assert store.get(trial).pid == store.get(search).pid
    looks = iter([True, False, False, False])  # alive at the first look, gone from the next on
    monkeypatch.setattr("fmnist.worker.process_alive", lambda pid, started=None: next(looks))
    assert reap_dead_runs(store) == [] and store.get(search).active and store.get(trial).active
    assert sorted(reap_dead_runs(store)) == [search, trial]


def test_zombie_process_counts_as_dead():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    # not waited for: once it exits it stays a zombie until reaped (its exit takes a while on a loaded machine)
    wait_until(lambda: psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE, timeout=60, message="the child to exit")
    assert not process_alive(process.pid)
    process.wait()


def test_epochs_batches_and_finish(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    try_start(store, run_id, max_parallel=1)
    store.record_progress(run_id, 1, 5, 10, 900.0, [(1, 5, 1.2, 0.6)])
    store.record_epoch(run_id, 1, {"loss": 1.0, "accuracy": 0.7, "val_loss": 0.9, "val_accuracy": 0.72}, 2.0)
    store.record_epoch(run_id, 2, {"loss": 0.8, "accuracy": 0.75, "val_loss": 0.85, "val_accuracy": 0.70}, 2.0)
    store.finish(run_id, "finished", test_loss=0.5, test_acc=0.81, train_s=4.0, samples_per_s=1000.0)
    run = store.get(run_id)
    assert (run.status, run.test_acc, run.best_val_acc, run.epoch) == ("finished", 0.81, 0.72, 2)
    assert [e["val_accuracy"] for e in store.epochs(run_id)] == [0.72, 0.70]
    assert store.batches(run_id) == [{"run_id": run_id, "epoch": 1, "step": 5, "loss": 1.2, "accuracy": 0.6}]
    assert store.point_counts(run_id) == (2, 1)
    assert store.point_counts(run_id + 1) == (0, 0)


def test_list_runs_by_status(home, database):
    store = RunStore()
    running, queued, finished = (store.create_run(SPEC) for _ in range(3))
    assert try_start(store, running, max_parallel=1)
    store.finish(finished, "finished")
    assert [(r.id, r.status) for r in store.list_runs(statuses=("queued", "running"))] == [(running, "running"), (queued, "queued")]
    assert [r.id for r in store.list_runs(statuses=("finished",))] == [finished]
    assert store.list_runs(statuses=()) == []
    assert [r.id for r in store.list_runs()] == [running, queued, finished]


def test_rename_and_delete(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    try_start(store, run_id, max_parallel=1)
    with pytest.raises(RuntimeError, match="stop it"):
        store.delete(run_id)
    store.finish(run_id, "stopped")
    store.rename(run_id, "  my best  ")
    assert store.get(run_id).name == "my best"
    store.delete(run_id)
    assert store.get(run_id) is None and not store.run_dir(run_id).exists()


def test_missing_or_corrupt_model_file_is_reported(home):
    store = RunStore()
    run_id = store.create_run(SPEC)
    with pytest.raises(ModelFileError, match="missing"):
        load_model(store, run_id)
    store.model_path(run_id).write_bytes(b"this is not a keras zip")
    with pytest.raises(ModelFileError, match="unreadable"):
        load_model(store, run_id)


def write_progress(home: str, run_id: int, points: int) -> None:
    store = RunStore(home)
    for step in range(1, points + 1):
        store.record_progress(run_id, 1, step, points, 100.0, [(1, step, 1.0 / step, 0.5)])


def test_one_writer_and_several_readers_at_once(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    try_start(store, run_id, max_parallel=1)
    writer = multiprocessing.get_context("spawn").Process(target=write_progress, args=(str(store.home), run_id, 400))
    writer.start()
    seen = []
    while writer.is_alive():
        for reader in (RunStore(store.home), RunStore(store.home)):
            run = reader.get(run_id)
            points = reader.batches(run_id)
            seen.append(run.step)
            assert len(points) >= run.step - 1  # a reader sees a consistent snapshot
    writer.join()
    assert writer.exitcode == 0
    assert seen == sorted(seen), "readers never see progress go backwards"
    assert len(store.batches(run_id)) == 400 and store.get(run_id).step == 400


def test_a_reused_pid_does_not_keep_a_dead_run_running(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    try_start(store, run_id, max_parallel=1)
    # As after a reboot: the pid now belongs to another process, started at another time.
    with store.connect() as db:
        db.execute(runs.update().where(runs.c.id == run_id).values(pid_started="1000000000.00"))
    assert reap_dead_runs(store) == [run_id]


def test_a_store_from_before_jobs_and_pid_tokens_still_opens(home):
    import sqlite3

    home.mkdir(parents=True)
    old = sqlite3.connect(home / "runs.sqlite")
    old.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, spec_json TEXT NOT NULL, "
                "status TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, ended_at REAL, pid INTEGER, "
                "train_limit INTEGER, params INTEGER NOT NULL, epoch INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0, "
                "steps_per_epoch INTEGER, samples_per_s REAL, updated_at REAL, stop_requested INTEGER NOT NULL DEFAULT 0, "
                "test_loss REAL, test_acc REAL, train_s REAL, best_val_acc REAL, cv_mean REAL, cv_std REAL, error TEXT)")
    old.execute("INSERT INTO runs (name, spec_json, status, created_at, params, test_acc) VALUES ('old', ?, 'finished', 0, 109386, 0.88)",
                (__import__("json").dumps(SPEC.to_dict()),))
    old.commit()
    old.close()
    [run] = RunStore().list_runs()
    assert (run.name, run.kind, run.test_acc, run.scores, run.pid_started) == ("old", "train", 0.88, [], None)


def test_deleting_a_run_deletes_its_jobs(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    store.finish(run_id, "finished")
    job = store.create_run(SPEC, kind="cv", parent_id=run_id, repeats=3)
    other = store.create_run(SPEC)
    with pytest.raises(RuntimeError, match=f"its job #{job} is queued"):
        store.delete(run_id)
    store.request_stop(job)
    store.delete(run_id)
    assert [r.id for r in store.list_runs()] == [other]
    assert not store.run_dir(job).exists()


def test_a_store_of_the_version_before_clusters_opens_and_gains_the_ray_job_column(home):
    import json

    import sqlalchemy as sa

    from fmnist import migrations
    from fmnist.migrations import legacy

    home.mkdir(parents=True)
    engine = sa.create_engine(f"sqlite:///{home / 'runs.sqlite'}")  # as the app before runs went to clusters left it
    with engine.begin() as db:
        legacy.migrate(db, to_version=legacy.MIGRATIONS.index(legacy.to_version_5))
        db.execute(sa.text("INSERT INTO runs (name, spec_json, status, created_at, params) VALUES ('from before', :spec, 'queued', 0, 1)"),
                   {"spec": json.dumps(SPEC.to_dict())})
    engine.dispose()
    [run] = RunStore().list_runs()
    assert (run.name, run.cluster_job, run.on_cluster) == ("from before", None, False)
    with RunStore().connect(write=False) as db:
        assert migrations.current_revision(db) == migrations.head()


def test_each_queue_has_its_own_slots(home, database):
    """Runs wait in their own queue: searches one at a time, beside the trainings' max_parallel."""
    store = RunStore()
    train_1, search_1, train_2, search_2 = (store.create_run(SPEC, name=name, queue=queue) for name, queue in
                                            (("t1", "training"), ("s1", "search"), ("t2", "training"), ("s2", "search")))
    assert [store.queue_position(run_id) for run_id in (train_1, search_1, train_2, search_2)] == [1, 1, 2, 2]
    assert not try_start(store, search_2, max_parallel=5), "first in its own queue only"
    assert try_start(store, search_1, max_parallel=1), "a search does not wait for the trainings queued before it"
    assert not try_start(store, search_2, max_parallel=5), "one search at a time, whatever max_parallel says"
    assert try_start(store, train_1, max_parallel=1), "a running search takes no training slot"
    assert not try_start(store, train_2, max_parallel=1)
    assert store.queue_position(train_2) == 1 and store.queue_position(search_2) == 1
    assert try_start(store, train_2, max_parallel=None), "no limit: the cluster queues the trainings itself"
    assert not try_start(store, search_2, max_parallel=None)
    assert [run.queue for run in store.list_runs()] == ["training", "search", "training", "search"]


def test_settings_and_results_of_a_kind(home, database):
    store = RunStore()
    run_id = store.create_run(SPEC)
    job = store.create_run(SPEC, kind="cv", parent_id=run_id, repeats=3)  # the old keyword, into settings
    other = store.create_run(SPEC, kind="seeds", parent_id=run_id, settings={"repeats": 2})
    assert (store.get(job).settings, store.get(job).repeats, store.get(other).repeats) == ({"repeats": 3}, 3, 2)
    store.record_scores(job, [0.8, 0.9])
    store.record_scores(other, [0.7])
    run, cv = store.get(run_id), store.get(job)
    assert cv.result == {"scores": [0.8, 0.9], "mean": pytest.approx(0.85), "std": pytest.approx(0.05)}
    assert (cv.cv_mean, cv.scores, cv.seeds_mean) == (pytest.approx(0.85), [0.8, 0.9], None)
    assert run.result == {"cv": {"mean": pytest.approx(0.85), "std": pytest.approx(0.05), "job": job},
                          "seeds": {"mean": 0.7, "std": 0.0, "job": other}}
    assert (run.cv_mean, run.seeds_mean, run.scores, run.summary()["cv_std"]) == (pytest.approx(0.85), 0.7, [], pytest.approx(0.05))
    store.set_result(run_id, {"note": "kept", "seeds": None})
    assert store.get(run_id).result == {"cv": run.result["cv"], "seeds": None, "note": "kept"}, "keys merge; a key set replaces"
    with pytest.raises(KeyError):
        store.set_result(999, {"x": 1})

    search = store.create_run(SPEC, kind="search", queue="search", space_json='{"trials": 3}')
    store.update_search(search, space={"trials": 5}, elapsed_s=2.0)
    assert (store.get(search).space, store.get(search).space_json, store.get(search).train_s) == ({"trials": 5}, '{"trials": 5}', 2.0)
    store.request_stop(search)
    store.requeue(search)
    with pytest.raises(ValueError, match=f"run {job} is not an ended search"):
        store.requeue(job)
    store.request_stop(job)
    store.requeue(job, allowed_kinds=("cv",))
    assert store.get(job).status == "queued"

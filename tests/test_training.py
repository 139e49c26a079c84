"""The engine on the real data: short trainings on subsets."""

import os
import signal

import numpy as np

from fmnist.models import dense_spec
from fmnist.prediction import load_model
from fmnist.services import Actor, start_training
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

from helpers import wait_until


def start(store: RunStore, spec, limit: int) -> int:
    run_id = store.create_run(spec, train_limit=limit)
    assert try_start(store, run_id, max_parallel=1)
    return run_id


def test_short_training_learns_streams_and_saves(home, dataset):
    store = RunStore()
    run_id = start(store, dense_spec([128, 64], epochs=3), limit=6000)
    summary = train_run(store, run_id, dataset)

    assert summary["status"] == "finished", store.get(run_id).error
    assert summary["test_acc"] > 0.75
    assert 0 < summary["test_loss"] < 1.0 and summary["samples_per_s"] > 0
    epochs = store.epochs(run_id)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all(e["val_loss"] is not None for e in epochs)
    assert epochs[-1]["loss"] < epochs[0]["loss"], "training loss falls"
    points = store.batches(run_id)
    assert points and all(1 <= p["epoch"] <= 3 and p["loss"] > 0 for p in points)

    run_dir = store.run_dir(run_id)
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    probs = np.load(store.probs_path(run_id))
    assert probs.shape == (10000, 10)
    assert np.mean(probs.argmax(1) == dataset.y_test) == summary["test_acc"]
    model = load_model(store, run_id)
    from fmnist.data import to_model_input

    reloaded = model.predict(to_model_input(dataset.x_test[:64]), verbose=0)
    np.testing.assert_allclose(reloaded, probs[:64], atol=1e-5)


def test_early_stopping_and_best_checkpoint(home, dataset):
    store = RunStore()
    # 300 images overfit within a few epochs, so validation loss turns up and training stops early.
    spec = dense_spec([256, 256], epochs=40, early_stopping=True, patience=2, checkpoint=True, val_split=0.3)
    run_id = start(store, spec, limit=300)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    assert len(store.epochs(run_id)) < 40
    assert (store.run_dir(run_id) / "best.weights.h5").is_file()


def test_missing_dataset_fails_the_run_with_the_way_to_get_it(home, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA", str(home / "nowhere"))
    store = RunStore()
    run_id = start(store, dense_spec([32], epochs=1), limit=100)
    summary = train_run(store, run_id)
    assert summary["status"] == "failed"
    assert "apt-get install" in store.get(run_id).error


def test_stop_ends_a_background_run_that_keeps_what_it_learnt(home):
    store = RunStore()
    run_id = start_training(store, Actor.local(), dense_spec([256, 128], epochs=50), train_limit=20000)
    wait_until(lambda: len(store.batches(run_id)) >= 3, timeout=120, message="live batch points")
    assert store.get(run_id).status == "running"
    store.request_stop(run_id)
    run = wait_until(lambda: (r := store.get(run_id)).status not in ("running", "queued") and r, timeout=60, message="the run to end")
    assert run.status == "stopped", run.error
    assert run.epoch < 50 and run.test_acc > 0.5
    assert store.model_path(run_id).is_file()


def test_second_run_queues_behind_the_first_and_killed_runs_are_interrupted(home):
    store = RunStore()
    first = start_training(store, Actor.local(), dense_spec([256, 128], epochs=50), train_limit=20000)
    second = start_training(store, Actor.local(), dense_spec([32], epochs=1), train_limit=500)
    wait_until(lambda: store.get(first).status == "running", timeout=60, message="the first run to start")
    wait_until(lambda: store.batches(first), timeout=120, message="the first run's batch points")
    assert store.get(second).status == "queued"
    assert store.queue_position(second) == 1

    os.kill(store.get(first).pid, signal.SIGKILL)
    # The queued run's process notices the dead one, marks it and takes the free slot.
    wait_until(lambda: store.get(first).status == "interrupted", timeout=30, message="the killed run to be marked interrupted")
    done = wait_until(lambda: (r := store.get(second)).status in ("finished", "failed") and r, timeout=120, message="the queued run to train")
    assert done.status == "finished", done.error


def test_live_progress_counts_samples_at_the_runs_batch_size(home, dataset):
    store = RunStore()
    run_id = start(store, dense_spec([64], epochs=3, batch_size=256, val_split=0.0), limit=30000)
    reports = []
    summary = train_run(store, run_id, dataset, progress=lambda **report: reports.append(report))
    assert summary["status"] == "finished"
    assert reports and all(r["steps"] == 118 for r in reports), "30,000 images in batches of 256"
    # The last live figure and the final one measure the same training; a wrong batch size would put them 8x apart.
    assert 0.5 < reports[-1]["samples_per_s"] / summary["samples_per_s"] < 2


def test_live_progress_never_counts_past_the_epochs_last_batch(home, dataset, monkeypatch):
    import fmnist.training

    monkeypatch.setattr(fmnist.training, "UPDATE_EVERY_S", 0.0)  # a point after every call into the graph
    store = RunStore()
    run_id = start(store, dense_spec([32], epochs=2, batch_size=100, val_split=0.0), limit=2500)
    reports = []
    assert train_run(store, run_id, dataset, progress=lambda **report: reports.append(report))["status"] == "finished"
    # 25 batches an epoch, run 16 at a time: Keras names the second call's end batch 32.
    assert [(r["epoch"], r["step"]) for r in reports] == [(1, 16), (1, 25), (2, 16), (2, 25)]
    assert max(point["step"] for point in store.batches(run_id)) == 25


def test_a_run_stops_at_its_teachers_cap_on_minutes_keeping_what_it_learnt(home, dataset):
    store = RunStore()
    # A cap of 0.01 minutes (the services set whole minutes, max_minutes in [sharing]): 0.6 s of training.
    run_id = store.create_run(dense_spec([16], epochs=500), train_limit=2000, settings={"max_minutes": 0.01})
    assert try_start(store, run_id, max_parallel=1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "stopped" and store.get(run_id).stopped_at_cap, store.get(run_id).error
    assert 0 < len(store.epochs(run_id)) < 500 and summary["test_acc"] > 0.1
    assert store.model_path(run_id).is_file()

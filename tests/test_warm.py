"""Warm trainers (fmnist.warm): a run handed to a process that already loaded Keras and the dataset,
and every way one can be unfit to take it (dead, stale code, turned off), after which the run starts
cold as it always did."""

import subprocess

import pytest

from fmnist import services, warm
from fmnist.access import Actor
from fmnist.models import dense_spec
from fmnist.runs import RunStatus
from fmnist.store import RunStore
from fmnist.worker import process_alive

from helpers import wait_until

SPEC = dense_spec([16], epochs=1)


@pytest.fixture
def store(home, monkeypatch):
    monkeypatch.setenv("FMNIST_WARM_TRAINER", "1")
    store = RunStore()
    yield store
    for key, (process, _version) in list(warm._waiting.items()):
        if key[0] == str(store.home):
            process.kill()
            del warm._waiting[key]


def ready_trainer(store) -> subprocess.Popen:
    warm.prepare(store, backends=("jax",))
    wait_until(lambda: warm.ready(store, "jax"), timeout=180, message="the warm trainer to load Keras and the dataset")
    return warm._waiting[(str(store.home), "jax")][0]


def train(store) -> int:
    return services.start_training(store, Actor.local(), SPEC, train_limit=600, backend_setting="jax")


def test_a_run_is_handed_to_the_waiting_warm_trainer_and_the_next_one_waits(store):
    trainer = ready_trainer(store)
    run_id = train(store)
    assert store.get(run_id).pid == trainer.pid, "the warm trainer is the run's process"
    run = wait_until(lambda: (r := store.get(run_id)).status != RunStatus.QUEUED and not r.active and r, timeout=180,
                     message="the run to end")
    assert run.status == RunStatus.FINISHED and run.test_acc is not None, run.error
    assert "trained by a warm trainer" in (store.run_dir(run_id) / "train.log").read_text()
    successor = warm._waiting[(str(store.home), "jax")][0]
    assert successor.pid != trainer.pid and successor.poll() is None, "a new warm trainer waits for the next run"

    # A run with another ahead of it waits in a light process: the warm trainer stays for the run next in line.
    ahead = store.create_run(SPEC, name="ahead", train_limit=600)
    behind = train(store)
    assert store.queue_position(behind) == 2
    assert store.get(behind).pid != successor.pid and warm._waiting[(str(store.home), "jax")][0] is successor
    for run_id in (behind, ahead):
        services.stop(store, Actor.local(), run_id)
    assert wait_until(lambda: not (r := store.get(behind)).active and r, timeout=60).status == RunStatus.CANCELLED


def test_a_dead_or_stale_warm_trainer_is_passed_over_and_the_run_starts_cold(store, monkeypatch):
    trainer = ready_trainer(store)
    trainer.kill()
    trainer.wait()
    run_id = train(store)
    assert store.get(run_id).pid != trainer.pid
    run = wait_until(lambda: not (r := store.get(run_id)).active and r, timeout=180, message="the cold run to end")
    assert run.status == RunStatus.FINISHED and run.error is None
    assert "warm trainer" not in (store.run_dir(run_id) / "train.log").read_text()

    stale = ready_trainer(store)
    monkeypatch.setattr(warm, "code_version", lambda: "the package was upgraded since")
    run_id = train(store)
    assert store.get(run_id).pid != stale.pid
    wait_until(lambda: not process_alive(stale.pid), timeout=30, message="the stale trainer to be ended")
    assert wait_until(lambda: not (r := store.get(run_id)).active and r, timeout=180).status == RunStatus.FINISHED


def test_a_warm_trainer_ends_when_its_server_goes_and_none_starts_when_turned_off(store, monkeypatch):
    trainer = ready_trainer(store)
    trainer.stdin.close()  # what the server's exit does to the pipe
    assert trainer.wait(timeout=30) == 0
    warm._waiting.clear()
    monkeypatch.setenv("FMNIST_WARM_TRAINER", "0")
    warm.prepare(store)
    assert not warm._waiting and not warm.hand_over(store, 1, "jax")

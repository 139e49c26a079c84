"""The fair queue (fmnist.queue_order, fmnist.store.RunStore.claim_slot): round-robin across people, so
everyone's first run starts before anyone's second; teachers go first; one person is first come, first served."""

import time
from dataclasses import replace

import pytest
from test_caps import finished_here

from fmnist.access import Actor, Person
from fmnist.estimates import Speed, family, flops_per_image, workload
from fmnist.models import dense_spec
from fmnist.queue_eta import Standing, derived_times, start_in
from fmnist.queue_order import Waiting, fair_order
from fmnist.runs import DERIVED_QUEUE, Run, RunKind, RunStatus
from fmnist.services import queue_standing, start_training
from fmnist.store import RunStore
from fmnist.worker import try_start

SPEC = dense_spec([16], epochs=1)


def test_everyones_first_run_before_anyones_second():
    waiting = [Waiting(1, "ada", 1.0), Waiting(2, "ada", 2.0), Waiting(3, "bob", 3.0), Waiting(4, "ada", 4.0),
               Waiting(5, "cy", 5.0), Waiting(6, "bob", 6.0)]
    assert fair_order(waiting, {}) == [1, 3, 5, 2, 6, 4]
    # Ada already trained twice this lesson: Bob's and Cy's first go ahead of her third
    assert fair_order(waiting, {"ada": 2}) == [3, 5, 6, 1, 2, 4]


def test_teachers_and_this_machine_go_first_and_one_person_is_fifo():
    waiting = [Waiting(1, "ada", 1.0), Waiting(2, "hopper", 2.0, teacher=True), Waiting(3, None, 3.0), Waiting(4, "bob", 4.0)]
    assert fair_order(waiting, {"hopper": 5}) == [2, 3, 1, 4]
    alone = [Waiting(i, None, float(i)) for i in (3, 1, 2)]
    assert fair_order(alone, {None: 7}) == [1, 2, 3]


@pytest.fixture
def store(home, monkeypatch):
    monkeypatch.setattr("fmnist.services.start", lambda store, run_id: None)  # records only: no training process
    return RunStore()


def test_the_store_starts_runs_in_the_fair_order_and_says_where_each_stands(store):
    ada, bob = Person("class:ada", "Ada"), Person("class:bob", "Bob")
    teacher = Person("class:hopper", "Ms Hopper", admin=True)
    ada_1 = start_training(store, Actor(ada, 2), SPEC)
    ada_2 = start_training(store, Actor(ada, 2), SPEC)
    time.sleep(0.01)
    bob_1 = start_training(store, Actor(bob, 2), SPEC)
    hopper = start_training(store, Actor(teacher, 2), SPEC)
    assert [store.queue_position(run_id) for run_id in (hopper, ada_1, bob_1, ada_2)] == [1, 2, 3, 4]
    assert store.queue_ahead(ada_2) == [hopper, ada_1, bob_1]
    assert not try_start(store, ada_2, max_parallel=1), "Ada's second waits for Bob's first"
    for expected in (hopper, ada_1, bob_1, ada_2):
        assert try_start(store, expected, max_parallel=1)
        store.finish(expected, RunStatus.FINISHED)
    assert store.queue_position(ada_2) == 0, "no longer queued"


# --- where a queued run stands and about when it starts (fmnist.queue_eta) ---

def standing_of(store: RunStore, run_id: int) -> Standing:
    return queue_standing(store, store.get(run_id))


def test_each_queued_run_sees_its_place_and_when_it_starts_from_the_times_measured_here(store, monkeypatch):
    monkeypatch.setenv("FMNIST_BACKEND", "jax")
    spec = dense_spec([16], epochs=2)  # on 10,000 images: 2 epochs of 9,000 after validation
    ada, bob, cy = (Person(f"class:{name.lower()}", name) for name in ("Ada", "Bob", "Cy"))
    ada_1 = start_training(store, Actor(ada, 2), spec, train_limit=10000)
    assert try_start(store, ada_1, max_parallel=1)
    ada_2 = start_training(store, Actor(ada, 2), spec, train_limit=10000)
    bob_1 = start_training(store, Actor(bob, 2), spec, train_limit=10000)
    assert standing_of(store, bob_1) == Standing(1, None), "nothing measured: no start time is invented"
    assert standing_of(store, bob_1).text() == "next in line, start time not yet known"

    store.record_progress(ada_1, 1, 50, 100, 320.0, [])  # a quarter done at 320 images/s: 15 s left
    assert store.get(ada_1).eta_s() == pytest.approx(15.0)
    assert standing_of(store, bob_1).seconds == pytest.approx(15.0), "the running run's time left, at its own speed"
    assert standing_of(store, ada_2).seconds is None, "Bob's run ahead of it was never measured"

    finished_here(store, spec, 10000, samples_per_s=300)  # this workload: 60 s here
    cy_1 = start_training(store, Actor(cy, 2), spec, train_limit=10000)
    assert [standing_of(store, run_id) for run_id in (bob_1, cy_1, ada_2)] == [
        Standing(1, pytest.approx(15.0)), Standing(2, pytest.approx(75.0)), Standing(3, pytest.approx(135.0))]
    assert standing_of(store, ada_2).text() == "3rd in line, about 2 min"
    assert standing_of(store, cy_1).text() == "2nd in line, about 1 min"

    # Two runs at once (FMNIST_MAX_PARALLEL=2): Bob's starts now, Cy's as Ada's first ends, Ada's second a minute later.
    monkeypatch.setenv("FMNIST_MAX_PARALLEL", "2")
    assert [standing_of(store, run_id).seconds for run_id in (bob_1, cy_1, ada_2)] == [0.0, pytest.approx(15.0), pytest.approx(60.0)]


def test_a_running_run_without_a_speed_yet_counts_its_expected_time_less_what_it_has_run():
    spec = dense_spec([16], epochs=1)
    speeds = [Speed("jax", workload(spec), family(spec), spec.batch_size, flops_per_image(spec), 900.0, None)]
    run = Run(id=1, name="a", spec=spec, status=RunStatus.RUNNING, created_at=0.0, started_at=100.0, ended_at=None, pid=None,
              pid_started=None, train_limit=10000, params=0, epoch=0, step=0, steps_per_epoch=None, samples_per_s=None,
              updated_at=None, stop_requested=False, test_loss=None, test_acc=None, train_s=None, best_val_acc=None, error=None,
              kind=RunKind.TRAIN, parent_id=None, owner=None, owner_name=None, backend_setting="jax", backend=None, device=None,
              cluster_job=None)
    seeds = replace(run, id=2, status=RunStatus.QUEUED, kind=RunKind.SEEDS, settings={"repeats": 3})
    assert start_in([], [run], speeds, slots=1, now=104.0) == pytest.approx(6.0), "10 s expected, 4 s run"
    assert start_in([seeds], [run], speeds, slots=1, now=104.0) == pytest.approx(36.0), "a seed job: 3 trainings"
    assert start_in([seeds], [run], speeds, slots=3, now=104.0) == 0.0
    assert start_in([], [run], [], slots=1, now=104.0) is None


def test_a_projection_or_an_export_waits_the_median_time_of_its_kind_here():
    """They train nothing, so no training's speed tells their time: those of their kind (and an export's
    format) that finished on this machine do, until one has, 'start time not yet known'."""
    run = Run(id=1, name="a", spec=None, status=RunStatus.FINISHED, created_at=0.0, started_at=0.0, ended_at=20.0, pid=None,
              pid_started=None, train_limit=None, params=0, epoch=0, step=0, steps_per_epoch=None, samples_per_s=None,
              updated_at=None, stop_requested=False, test_loss=None, test_acc=None, train_s=None, best_val_acc=None, error=None,
              kind=RunKind.EXPORT, parent_id=7, owner=None, owner_name=None, backend_setting=None, backend=None, device=None,
              cluster_job=None, settings={"variant": "onnx"}, queue=DERIVED_QUEUE)
    finished = [run, replace(run, id=2, ended_at=30.0), replace(run, id=3, ended_at=100.0, settings={"variant": "tflite"}),
                replace(run, id=4, kind=RunKind.PROJECTION, settings={}, ended_at=40.0),
                replace(run, id=5, status=RunStatus.FAILED, ended_at=1.0)]  # a failed one tells nothing
    derived = derived_times(finished)
    assert derived == {(RunKind.EXPORT, "onnx"): 25.0, (RunKind.EXPORT, "tflite"): 100.0, (RunKind.PROJECTION, None): 40.0}
    running = replace(run, id=6, status=RunStatus.RUNNING, started_at=1000.0, ended_at=None)
    projection = replace(run, id=8, status=RunStatus.QUEUED, kind=RunKind.PROJECTION, settings={}, started_at=None, ended_at=None)
    assert start_in([], [running], [], slots=1, now=1005.0, derived=derived) == pytest.approx(20.0), "25 s expected, 5 s run"
    assert start_in([projection], [running], [], slots=1, now=1005.0, derived=derived) == pytest.approx(60.0)
    unknown = replace(projection, kind=RunKind.EXPORT, settings={"variant": "never made here"})
    assert start_in([unknown], [running], [], slots=1, now=1005.0, derived=derived) is None
    assert Standing(2, None).text() == "2nd in line, start time not yet known"

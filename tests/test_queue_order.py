"""The fair queue (fmnist.queue_order, fmnist.store.RunStore.claim_slot): round-robin across people, so
everyone's first run starts before anyone's second; teachers go first; one person is first come, first served."""

import time

import pytest

from fmnist.access import Actor, Person
from fmnist.models import dense_spec
from fmnist.queue_order import Waiting, fair_order
from fmnist.runs import RunStatus
from fmnist.services import start_training
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

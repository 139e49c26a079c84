"""The caps a teacher sets on each run ([sharing] max_epochs, max_images, max_params, max_minutes):
parsed (fmnist.access), checked once for students in fmnist.services, teachers and this machine exempt."""

import pytest
from test_access import CLASS

from fmnist.access import Actor, Caps, Person, SharingConfigError, sharing_from
from fmnist.estimates import trained_samples
from fmnist.machine import cpu_name
from fmnist.models import dense_spec
from fmnist.runs import LimitError, RunKind, RunStatus
from fmnist.search_space import SearchSpace
from fmnist.services import start_repeat, start_search, start_training
from fmnist.store import RunStore
from fmnist.worker import try_start

ADA = Person("class:ada", "Ada")
TEACHER = Person("class:hopper", "Ms Hopper", admin=True)
SPEC = dense_spec([16], epochs=2)


def finished_here(store: RunStore, spec, limit: int | None, samples_per_s: float) -> int:
    """A training finished on this machine at that speed (its start-up too short to count): what estimates read."""
    run_id = store.create_run(spec, train_limit=limit)
    assert try_start(store, run_id, max_parallel=None)
    store.record_engine(run_id, "jax", cpu_name())
    samples = trained_samples(spec, limit)
    store.finish(run_id, RunStatus.FINISHED, train_s=samples / samples_per_s, samples_per_s=samples_per_s)
    return run_id


@pytest.fixture
def store(home, monkeypatch):
    monkeypatch.setattr("fmnist.services.start", lambda store, run_id: None)  # records only: no training process
    monkeypatch.setenv("FMNIST_BACKEND", "jax")
    return RunStore()


def test_caps_are_read_from_sharing_and_each_must_be_a_positive_whole_number():
    caps = sharing_from({"sharing": {**CLASS["sharing"], "max_epochs": 10, "max_images": 20000, "max_minutes": 5}}, "0.0.0.0").caps
    assert caps == Caps(max_epochs=10, max_images=20000, max_minutes=5) and caps
    assert not sharing_from(CLASS, "0.0.0.0").caps, "no caps unless the teacher sets them"
    assert caps.describe() == "at most 10 epochs, 20,000 training images, 5 minutes a run"
    for key, value in (("max_epochs", 0), ("max_images", "20000"), ("max_params", 2.5), ("max_minutes", True), ("max_minutes", -3)):
        with pytest.raises(SharingConfigError, match=rf"\[sharing\] {key} .*must be a whole number from 1, got {value!r}"):
            sharing_from({"sharing": {**CLASS["sharing"], key: value}}, "0.0.0.0")


def test_a_start_beyond_a_cap_is_refused_naming_it_and_teachers_and_this_machine_are_exempt(store):
    caps = Caps(max_epochs=10, max_images=20000, max_params=20000)
    student = Actor(ADA, 2, caps)
    with pytest.raises(LimitError) as refused:
        start_training(store, student, dense_spec([16], epochs=30), train_limit=10000)
    assert str(refused.value) == "This class allows at most 10 epochs a run; you asked for 30."
    with pytest.raises(LimitError, match=r"^This class allows at most 20,000 training images a run; you asked for 60,000\.$"):
        start_training(store, student, SPEC)  # all the images
    with pytest.raises(LimitError, match=r"at most 10 epochs a run; you asked for 12\. "
                                         r"This class allows at most 20,000 parameters a run; this stack has 109,386\.$"):
        start_training(store, student, dense_spec([128, 64], epochs=12), train_limit=5000)
    assert store.list_runs() == [], "nothing was created"
    start_training(store, student, SPEC, train_limit=20000)
    start_training(store, Actor(TEACHER, 2, caps), dense_spec([128, 64], epochs=30))
    start_training(store, Actor.local(), dense_spec([128, 64], epochs=30))
    assert len(store.list_runs()) == 3


def test_minutes_are_checked_by_the_measured_time_and_carried_to_the_training(store):
    student = Actor(ADA, 5, Caps(max_minutes=1))
    run_id = start_training(store, student, SPEC, train_limit=10000)
    assert store.get(run_id).settings["max_minutes"] == 1, "nothing measured yet: it starts, and its training stops at the cap"
    store.request_stop(run_id)
    finished_here(store, SPEC, 10000, samples_per_s=300)  # 2 epochs of 9,000 images: 60 s here
    start_training(store, student, SPEC, train_limit=10000)
    with pytest.raises(LimitError, match=r"^This class allows at most 1 minute a run; this one would take 3 min 00 s here \(1 run\)\.$"):
        start_training(store, student, dense_spec([16], epochs=6), train_limit=10000)
    assert "max_minutes" not in store.get(start_training(store, Actor(TEACHER, 5, Caps(max_minutes=1)), SPEC)).settings


def test_cross_validation_seeds_and_searches_are_capped_too(store):
    finished_here(store, SPEC, 10000, samples_per_s=300)  # 60 s each time it trains
    ada_run = store.create_run(SPEC, train_limit=10000, owner=ADA.id, owner_name=ADA.name)
    try_start(store, ada_run, max_parallel=None)
    store.record_engine(ada_run, "jax", cpu_name())
    store.finish(ada_run, RunStatus.FINISHED, train_s=60, samples_per_s=300)
    student = Actor(ADA, 5, Caps(max_minutes=4, max_epochs=5))
    with pytest.raises(LimitError, match=r"at most 4 minutes a run; this one would take 5 min 00 s here \(median of 2 runs\)"):
        start_repeat(store, student, ada_run, RunKind.CV, 5)
    job = start_repeat(store, student, ada_run, RunKind.SEEDS, 3)
    assert store.get(job).settings == {"repeats": 3, "max_minutes": 4}
    with pytest.raises(LimitError, match=r"^This class allows at most 5 epochs a run; this search's trials train for 6\. "
                                         r"This class allows at most 4 minutes a run; it may run for 10\.$"):
        start_search(store, student, SearchSpace())
    with pytest.raises(LimitError, match=r"at most 100,000 parameters a run; it may try stacks of up to 3,979,274"):
        start_search(store, Actor(ADA, 5, Caps(max_params=100_000)), SearchSpace())
    start_search(store, student, SearchSpace(epochs=5, minutes=4))
    start_search(store, Actor(TEACHER, 5, Caps(max_epochs=1)), SearchSpace())

"""The application layer's checks (fmnist.services): who may act on a run, and the limits on what
one person may queue, checked once for the pages and the command line alike; the registry of run
kinds. No training runs here: the runs' processes are not started (fmnist.services.start is
replaced), only their records."""

import pytest

from fmnist import jobs, services
from fmnist.access import AccessError, Actor, Person
from fmnist.export_formats import Variant
from fmnist.models import dense_spec
from fmnist.runs import LimitError, RunKind, RunStatus
from fmnist.search_space import SearchSpace
from fmnist.store import RunStore

SPEC = dense_spec([16], epochs=1)
ADA, BOB = Person("class:ada", "Ada"), Person("class:bob", "Bob")
TEACHER = Person("class:hopper", "Ms Hopper", admin=True)
LIMIT = 2


@pytest.fixture
def store(home, monkeypatch):
    started = []
    monkeypatch.setattr("fmnist.services.start", lambda store, run_id: started.append(run_id))
    store = RunStore()
    store.started = started
    return store


def finished_training(store: RunStore, owner: Person) -> int:
    run_id = services.start_training(store, Actor(owner, LIMIT), SPEC)
    store.finish(run_id, RunStatus.FINISHED, test_acc=0.8)
    return run_id


def ended_search(store: RunStore, owner: Person, minutes: float = 10.0) -> int:
    search_id = services.start_search(store, Actor(owner, LIMIT), SearchSpace(trials=5, minutes=minutes))
    services.stop(store, Actor(owner, LIMIT), search_id)  # queued: cancelled at once
    assert store.get(search_id).status == RunStatus.CANCELLED
    return search_id


def test_resuming_a_search_counts_against_the_per_person_limit(store):
    """Issue 26, #3: two runs active plus Resume made three."""
    search_id = ended_search(store, ADA)
    for _ in range(LIMIT):
        services.start_training(store, Actor(ADA, LIMIT), SPEC)
    with pytest.raises(LimitError, match=r"You have 2 trainings queued or running.*\(2\)"):
        services.resume_search(store, Actor(ADA, LIMIT), search_id)
    assert store.get(search_id).status == RunStatus.CANCELLED, "the refused resume changed nothing"
    services.resume_search(store, Actor(TEACHER, LIMIT), search_id)  # a teacher has no limit
    assert store.get(search_id).status == RunStatus.QUEUED and store.started[-1] == search_id


def test_a_students_search_has_a_bounded_budget_new_or_resumed(store):
    """Issue 26, #3: Resume accepted 1,000 trials or 1,440 minutes, holding the one search slot for a day."""
    with pytest.raises(LimitError, match="at most 60 minutes"):
        services.start_search(store, Actor(ADA, LIMIT), SearchSpace(trials=5, minutes=1440.0))
    search_id = ended_search(store, ADA)
    with pytest.raises(LimitError, match="at most 60 minutes"):
        services.resume_search(store, Actor(ADA, LIMIT), search_id, minutes=1440.0)
    with pytest.raises(LimitError, match="at most 200 stacks"):
        services.resume_search(store, Actor(ADA, LIMIT), search_id, trials=1000)
    assert SearchSpace.from_dict(store.get(search_id).space).minutes == 10.0, "the refused budget was not stored"
    services.resume_search(store, Actor(TEACHER, LIMIT), search_id, minutes=1440.0)  # a teacher's may run longer
    assert SearchSpace.from_dict(store.get(search_id).space).minutes == 1440.0


def test_only_a_runs_owner_or_a_teacher_starts_a_job_on_it_so_nobody_blocks_its_delete(store):
    """Issue 26, #11: Bob's cross-validation on Ada's run kept Ada from deleting it, and she could not stop it."""
    run_id = finished_training(store, ADA)
    for kind in (RunKind.CV, RunKind.SEEDS):
        with pytest.raises(AccessError, match="belongs to Ada"):
            services.start_repeat(store, Actor(BOB, LIMIT), run_id, kind, 3)
    assert store.children(run_id) == [], "no job was created"
    services.delete(store, Actor(ADA, LIMIT), run_id)
    assert store.get(run_id) is None

    run_id = finished_training(store, ADA)
    job_id = services.start_repeat(store, Actor(TEACHER, LIMIT), run_id, RunKind.CV, 3)
    assert store.get(job_id).parent_id == run_id and store.started[-1] == job_id
    with pytest.raises(RuntimeError, match="is queued"):
        services.delete(store, Actor(ADA, LIMIT), run_id)  # the teacher's job: Ada waits for it, as she would for her own


def test_stop_rename_delete_are_the_owners_or_a_teachers(store):
    run_id = services.start_training(store, Actor(ADA, LIMIT), SPEC)
    for action in (lambda a: services.stop(store, a, run_id), lambda a: services.rename(store, a, run_id, "mine now"),
                   lambda a: services.delete(store, a, run_id)):
        with pytest.raises(AccessError, match="only they or a teacher"):
            action(Actor(BOB, LIMIT))
    assert store.get(run_id).status == RunStatus.QUEUED and store.get(run_id).name == f"run {run_id}"
    services.rename(store, Actor(TEACHER), run_id, "renamed by the teacher")
    assert services.stop(store, Actor(ADA, LIMIT), run_id) == RunStatus.CANCELLED
    with pytest.raises(AccessError, match="There is no run 99"):
        services.stop(store, Actor(ADA, LIMIT), 99)


def test_every_run_kind_is_its_module_found_by_the_registry_with_its_queue():
    """RunKind is the registry: each member is the module fmnist/jobs/<kind>.py, whose JobKind is found there."""
    assert set(jobs.KINDS) == set(RunKind)
    for kind, job in jobs.KINDS.items():
        assert job.kind == kind and type(job).__module__ == f"fmnist.jobs.{kind}"
    assert {kind.queue for kind in jobs.KINDS.values()} == {"training", "search", "derived"}
    assert {kind.kind for kind in jobs.KINDS.values() if kind.queue == "derived"} == {RunKind.PROJECTION, RunKind.EXPORT}
    assert {kind.kind for kind in jobs.KINDS.values() if kind.local_only} == {RunKind.SEARCH, RunKind.PROJECTION, RunKind.EXPORT}
    with pytest.raises(ValueError):
        jobs.kind_of("hologram-from-a-newer-version")


# --- a run's projection and exports: queued runs of their own, on the run's model ---

def with_model(store: RunStore, owner: Person) -> int:
    """A finished training of owner's with a model file (not a real model: nothing loads it here)."""
    run_id = finished_training(store, owner)
    store.model_path(run_id).write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: passes the check that needs no Keras
    return run_id


def test_only_a_runs_owner_or_a_teacher_projects_or_exports_it(store):
    """As for a cross-validation: a projection or an export on someone else's run would keep them from deleting it."""
    run_id = with_model(store, ADA)
    for action in (lambda a: services.start_projection(store, a, run_id), lambda a: services.export(store, a, run_id, Variant("onnx"))):
        with pytest.raises(AccessError, match="belongs to Ada: only they or a teacher"):
            action(Actor(BOB, LIMIT))
    assert store.children(run_id) == [] and store.started == [run_id], "nothing was queued but the training"
    projection = services.start_projection(store, Actor(ADA, LIMIT), run_id)
    export = services.export(store, Actor(TEACHER, LIMIT), run_id, Variant("litert", "int8"))
    for job_id, kind, owner in ((projection, RunKind.PROJECTION, ADA), (export, RunKind.EXPORT, TEACHER)):
        job = store.get(job_id)
        assert (job.kind, job.parent_id, job.owner, job.status, job.queue) == (kind, run_id, owner.id, RunStatus.QUEUED, "derived")
        assert job.derived and job_id in store.started
    assert store.get(export).settings["variant"] == "litert-int8" and store.get(export).name == f"LiteRT int8 export of #{run_id}"
    with pytest.raises(AccessError, match="only they or a teacher may stop"):
        services.stop(store, Actor(BOB, LIMIT), projection)
    assert services.stop(store, Actor(ADA, LIMIT), projection) == RunStatus.CANCELLED
    with pytest.raises(RuntimeError, match=f"its job #{export} is queued"):
        services.delete(store, Actor(ADA, LIMIT), run_id)  # the teacher's export: Ada may stop it, as she may see it
    services.stop(store, Actor(TEACHER), export)
    services.delete(store, Actor(ADA, LIMIT), run_id)
    assert store.get(projection) is None and store.get(export) is None, "they go with the run they worked on"


def test_a_run_without_a_usable_model_is_neither_projected_nor_exported(store):
    queued = services.start_training(store, Actor(ADA, LIMIT), SPEC)
    no_file = finished_training(store, ADA)
    for run_id, why in ((queued, "is queued"), (no_file, "no model file"), (99, "there is no run 99")):
        for action in (services.start_projection, lambda *args: services.export(*args, Variant("onnx"))):
            with pytest.raises(ValueError, match=why):
                action(store, Actor(ADA, LIMIT), run_id)
    assert not any(run.derived for run in store.list_runs())


def test_projections_and_exports_count_towards_nobodys_limit_and_are_not_queued_twice(store):
    """They are short and train nothing: a student at their limit still sees their model's t-SNE, and a
    t-SNE does not keep them from queueing a training."""
    run_id = with_model(store, ADA)
    for _ in range(LIMIT):
        services.start_training(store, Actor(ADA, LIMIT), SPEC)
    projection = services.start_projection(store, Actor(ADA, LIMIT), run_id)
    onnx = services.export(store, Actor(ADA, LIMIT), run_id, Variant("onnx"))
    assert services.start_projection(store, Actor(ADA, LIMIT), run_id) == projection, "the one queued already"
    assert services.export(store, Actor(TEACHER), run_id, Variant("onnx")) == onnx, "the one queued already, whoever asks"
    assert services.export(store, Actor(ADA, LIMIT), run_id, Variant("litert")) not in (projection, onnx), "another format: another run"
    with pytest.raises(LimitError, match=r"You have 2 trainings queued or running"):
        services.start_training(store, Actor(ADA, LIMIT), SPEC)
    search_id = ended_search(store, BOB)
    services.start_projection(store, Actor(BOB, LIMIT), with_model(store, BOB))
    services.start_training(store, Actor(BOB, LIMIT), SPEC)
    services.resume_search(store, Actor(BOB, LIMIT), search_id)  # Bob's training and his search: his two, the t-SNE not counted

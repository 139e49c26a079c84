"""A teacher's view of the class (issue 28, item 5): pausing and resuming the queue (no run starts while it is
paused, and the order holds after; on SQLite and PostgreSQL), stopping every run, the class leaderboard as CSV, students refused; and
the Class page through AppTest, a teacher's and a student's. Runs are store rows: no training."""

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest
from test_access import CLASS, quick_hashes, served_to_others, shared_app  # noqa: F401  (fixtures)

from fmnist import class_view, services
from fmnist.access import AccessError, Actor, Person
from fmnist.app.navigation import CLASS_PAGE, teaches
from fmnist.app.session import SIGN_IN
from fmnist.models import dense_spec
from fmnist.runs import RunStatus
from fmnist.store import RunStore
from fmnist.worker import this_process, try_start

from helpers import APP

SPEC = dense_spec([16], epochs=2)
TEACHER = Actor(Person("class:hopper", "Ms Hopper", admin=True))
ADA = Actor(Person("class:ada", "Ada"), max_runs=2)
BOB = Actor(Person("class:bob", "Bob"), max_runs=2)


def queued(store: RunStore, actor: Actor, name: str = "") -> int:
    """A student's queued run whose process (this test's) waits for its turn."""
    run_id = store.create_run(SPEC, name=name or None, train_limit=10000, **actor.owner_fields())
    store.set_pid(run_id, *this_process())
    return run_id


def test_a_paused_queue_starts_nothing_and_keeps_its_order(home, database):
    store = RunStore()
    ada1, bob1, ada2 = queued(store, ADA), queued(store, BOB), queued(store, ADA)
    services.pause_queue(store, TEACHER, now=1000.0)
    assert store.queue_paused() == {"by": "Ms Hopper", "since": 1000.0}
    services.pause_queue(store, TEACHER)  # twice: still who paused it first, and when
    assert store.queue_paused()["since"] == 1000.0
    assert not try_start(store, ada1, max_parallel=2), "the first in line waits while the queue is paused"
    assert not try_start(store, ada1, max_parallel=None), "on a cluster too"
    assert [store.queue_position(r) for r in (ada1, bob1, ada2)] == [1, 2, 3], "each keeps its place"
    assert {run.status for run in store.list_runs()} == {RunStatus.QUEUED}
    services.resume_queue(store, TEACHER)
    assert store.queue_paused() is None
    assert not try_start(store, bob1, max_parallel=2), "resumed, the order is the one it had"
    assert try_start(store, ada1, max_parallel=2) and try_start(store, bob1, max_parallel=2)
    assert store.queue_position(ada2) == 1


def test_stop_all_stops_the_running_and_cancels_the_queued(home):
    store = RunStore()
    running = queued(store, ADA)
    assert try_start(store, running, max_parallel=1)
    waiting = queued(store, BOB)
    done = store.create_run(SPEC, **BOB.owner_fields())
    assert try_start(store, done, max_parallel=None)
    store.finish(done, RunStatus.FINISHED, test_acc=0.8)
    assert sorted(services.stop_all(store, TEACHER)) == [running, waiting]
    assert store.get(running).stop_requested and store.get(running).status == RunStatus.RUNNING, "stops at its next batch"
    assert store.get(waiting).status == RunStatus.CANCELLED
    assert store.get(done).status == RunStatus.FINISHED
    assert services.stop_all(store, TEACHER) == [running], "only what is still active"


def test_students_are_refused_the_teachers_actions(home):
    store = RunStore()
    run_id = queued(store, BOB)
    for action, words in ((services.pause_queue, "pause the queue"), (services.resume_queue, "resume the queue"),
                          (services.stop_all, "stop every run"), (services.class_leaderboard_csv, "download the class leaderboard")):
        with pytest.raises(AccessError, match=f"^Only a teacher may {words}.$"):
            action(store, ADA)
    with pytest.raises(AccessError, match="belongs to Bob"):
        services.stop(store, ADA, run_id)
    assert store.queue_paused() is None and store.get(run_id).status == RunStatus.QUEUED, "nothing changed"
    services.pause_queue(store, Actor.local())  # this machine's own user may (a store a class left paused)
    services.resume_queue(store, Actor.local())


def test_the_class_leaderboard_as_csv(home):
    store = RunStore()
    scored = {}
    for actor, acc, widths in ((ADA, 0.85, [32]), (BOB, 0.88, [64, 32]), (ADA, None, [16])):
        run_id = store.create_run(dense_spec(widths, epochs=3), name=f"=HYPERLINK(\"x\") {actor.person.name}" if acc is None else None,
                                  train_limit=None if acc == 0.88 else 5000, **actor.owner_fields())
        assert try_start(store, run_id, max_parallel=None)
        if acc is not None:
            store.record_epoch(run_id, 1, {"val_accuracy": acc - 0.01}, 1.0)
            store.finish(run_id, RunStatus.FINISHED, test_acc=acc)
        scored[acc] = run_id
    rows = list(csv.reader(io.StringIO(services.class_leaderboard_csv(store, TEACHER))))
    assert tuple(rows[0]) == class_view.LEADERBOARD_COLUMNS == (
        "person", "run", "name", "stack", "parameters", "epochs", "images", "test accuracy", "validation accuracy", "status", "started")
    assert [row[:2] for row in rows[1:]] == [["Bob", str(scored[0.88])], ["Ada", str(scored[0.85])], ["Ada", str(scored[None])]]
    bob = dict(zip(rows[0], rows[1], strict=True))
    assert (bob["stack"], bob["parameters"], bob["epochs"], bob["images"]) == ("64-32", f"{store.get(scored[0.88]).params}", "3", "60000")
    assert (bob["test accuracy"], bob["validation accuracy"], bob["status"]) == ("0.8800", "0.8700", "finished")
    assert bob["started"].endswith(" UTC")
    unscored = dict(zip(rows[0], rows[3], strict=True))
    assert unscored["name"].startswith("'=HYPERLINK"), "a name a spreadsheet would run as a formula stays text"
    assert (unscored["test accuracy"], unscored["status"], unscored["images"]) == ("", "running", "5000")


def test_who_is_signed_in_once_a_person(home):
    store = RunStore()
    store.people.add_sign_in("t1", "class:ada", "Ada", False)
    store.people.add_sign_in("t2", "class:hopper", "Ms Hopper", True)
    store.people.add_sign_in("t3", "class:ada", "Ada", False)  # a second tab
    people = class_view.signed_in_people(store.people.sign_ins())
    assert [(p.name, p.teacher, p.tabs) for p in people] == [("Ada", False, 2), ("Ms Hopper", True, 1)]
    assert people[0].since <= people[1].since


def test_the_class_page_is_a_teachers():
    shared = shared_sharing()
    assert teaches(TEACHER.person, shared) and not teaches(ADA.person, shared)
    assert not teaches(Actor.local().person, type(shared)()), "alone on one's machine there is no class"


def shared_sharing():
    from fmnist.access import sharing_from

    return sharing_from(CLASS, "0.0.0.0")


@pytest.fixture
def menus(monkeypatch) -> list[dict]:
    """Each app run's navigation as its person sees it: page title -> shown in the menu (st.navigation's pages, recorded)."""
    import streamlit as st

    found, navigation = [], st.navigation

    def recording(pages, **kwargs):
        found.append({page.title: page.visibility == "visible" for page in pages})
        return navigation(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", recording)
    return found


def signed_in_app(token: str, page: str | None = None, watch: int | None = None) -> AppTest:
    at = shared_app(CLASS)
    at.session_state[SIGN_IN] = token
    if watch is not None:
        at.session_state["watch_run"] = watch
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def test_a_teacher_sees_the_class_pauses_the_queue_stops_all_and_downloads_the_csv(home, served_to_others, menus):  # noqa: F811
    store = RunStore()
    store.people.add_sign_in("teachers-tab", "class:hopper", "Ms Hopper", True)
    store.people.add_sign_in("adas-tab", "class:ada", "Ada", False)
    bobs = queued(store, BOB, "bobs run")
    assert try_start(store, bobs, max_parallel=1)
    adas = queued(store, ADA, "adas run")

    teacher = signed_in_app("teachers-tab", CLASS_PAGE)
    assert menus[-1]["Class"], "in a teacher's navigation"
    assert [t.value for t in teacher.title] == ["Class"]
    people = teacher.dataframe[0].value
    assert list(people["name"]) == ["Ms Hopper", "Ada"] and list(people["role"]) == ["teacher", "student"]
    queue = teacher.dataframe[1].value
    assert [(r["run"], r["person"], r["status"]) for _, r in queue.iterrows()] == [(bobs, "Bob", "running"), (adas, "Ada", "queued")]
    assert queue["where"][0] == "epoch 0/2" and queue["where"][1].startswith("next in line")

    teacher.button(key="class_pause").click().run()
    assert not teacher.exception, teacher.exception
    assert "The queue is paused." in [s.value for s in teacher.success]
    assert "Paused by Ms Hopper" in teacher.warning[0].value
    assert store.queue_paused()["by"] == "Ms Hopper"
    assert teacher.dataframe[1].value["where"][1] == "next in line", "no estimate while paused"

    student = signed_in_app("adas-tab", watch=adas)  # Build & Train, watching her queued run; the sidebar too
    assert "Queued: next in line, but the teacher paused the queue" in student.info[0].value
    captions = [c.value for c in student.sidebar.caption]
    assert f"Your run #{adas}: next in line; the teacher paused the queue" in captions, captions
    assert "The teacher paused the queue: queued runs wait until it is resumed." in captions
    assert not try_start(store, adas, max_parallel=2)

    csv_button = teacher.get("download_button")
    assert len(csv_button) == 1
    text = services.class_leaderboard_csv(store, TEACHER)
    assert text.splitlines()[0] == ",".join(class_view.LEADERBOARD_COLUMNS) and len(text.splitlines()) == 3

    teacher.button(key="class_stop_all").click().run()
    assert not teacher.exception, teacher.exception
    assert "Asked 2 runs to stop." in [s.value for s in teacher.success]
    assert store.get(adas).status == RunStatus.CANCELLED and store.get(bobs).stop_requested

    teacher.button(key="class_resume").click().run()
    assert store.queue_paused() is None and not teacher.warning


def test_a_student_has_no_class_page(home, served_to_others, menus):  # noqa: F811
    store = RunStore()
    store.people.add_sign_in("adas-tab", "class:ada", "Ada", False)
    run_id = queued(store, BOB)
    student = signed_in_app("adas-tab")
    assert menus[-1]["Leaderboard"] and not menus[-1]["Class"], "not in a student's navigation"
    student.switch_page(CLASS_PAGE).run()  # her own address for it, typed in
    assert not student.exception, student.exception
    assert [e.value for e in student.error] == ["The Class page is a teacher's: sign in with the teacher code to see the class."]
    assert not student.button and not student.dataframe, "nothing of the class behind it"
    assert store.get(run_id).status == RunStatus.QUEUED


def test_alone_there_is_no_class_page_and_a_paused_queue_resumes_from_the_sidebar(home, menus):
    store = RunStore()
    run_id = queued(store, BOB)
    services.pause_queue(store, TEACHER)  # a class paused this store, then the app is run alone
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["watch_run"] = run_id
    at.run()
    assert not at.exception, at.exception
    assert not menus[-1]["Class"]
    assert "Queued: next in line, but the queue is paused" in at.info[0].value
    at.sidebar.button(key="sidebar_resume").click().run()
    assert store.queue_paused() is None

"""A class's student on Build & Train, through AppTest: where their queued run stands (on the page and in
the sidebar), and their teacher's caps on the sliders and on a start. Store rows, no trainings."""

import pytest
from test_access import CLASS, CLASS_CODE, quick_hashes, served_to_others, shared_app, sign_in  # noqa: F401  (fixtures)
from test_caps import finished_here

from fmnist.app.session import SIGN_IN
from fmnist.models import dense_spec
from fmnist.runs import RunStatus
from fmnist.store import RunStore
from fmnist.worker import try_start

SPEC = dense_spec([16], epochs=2)
pytestmark = pytest.mark.usefixtures("served_to_others")


def test_a_students_queued_run_shows_its_place_and_when_it_starts(home, monkeypatch):
    monkeypatch.setenv("FMNIST_BACKEND", "jax")
    store = RunStore()
    finished_here(store, SPEC, 10000, samples_per_s=300)  # this workload: 60 s here
    bobs = store.create_run(SPEC, train_limit=10000, owner="class:bob", owner_name="Bob")
    assert try_start(store, bobs, max_parallel=1)  # this test process stands in for Bob's training
    store.record_progress(bobs, 1, 50, 100, 320.0, [])  # 15 s left
    cys = store.create_run(SPEC, train_limit=10000, owner="class:cy", owner_name="Cy")
    adas = store.create_run(SPEC, train_limit=10000, owner="class:ada", owner_name="Ada")
    store.people.add_sign_in("adas-tab", "class:ada", "Ada", False)  # Ada signed in (the form: test_access)
    at = shared_app(CLASS)
    at.session_state[SIGN_IN] = "adas-tab"
    at.session_state["watch_run"] = adas
    at.run()  # AppTest (Streamlit 1.67) keeps the sidebar of an app's first run only, under st.navigation
    assert not at.exception, at.exception
    assert "Queued: 2nd in line, about 1 min." in [info.value for info in at.info][0]
    captions = [caption.value for caption in at.sidebar.caption]
    assert f"Your run #{adas}: 2nd in line, about 1 min" in captions, captions
    assert not any(f"Your run #{cys}" in caption for caption in captions), "Cy's run is not hers"


def test_a_teachers_caps_bound_the_sliders_and_a_start_beyond_one_is_refused(home):
    store = RunStore()
    capped = store.create_run(SPEC, owner="class:ada", owner_name="Ada", settings={"max_minutes": 5})
    assert try_start(store, capped, max_parallel=1)
    store.set_result(capped, {"stopped_at_cap": True})  # as its training does at the cap (test_training)
    store.finish(capped, RunStatus.STOPPED)
    at = shared_app({"sharing": {**CLASS["sharing"], "max_epochs": 5, "max_images": 15000, "max_params": 50000,
                                 "max_minutes": 8}})
    at.session_state["watch_run"] = capped
    at.run()
    sign_in(at, CLASS_CODE, "Ada", "secret1")
    assert not at.exception, at.exception
    epochs = at.slider(key="build_epochs")
    assert (epochs.proto.max, epochs.value) == (5, 5), "the preset's 10 epochs came down to the cap"
    assert at.select_slider(key="build_limit").options == ["1000", "2000", "5000", "10000", "15000"]
    assert at.select_slider(key="build_limit").value == 15000
    assert any("Your teacher's caps: at most 5 epochs, 15,000 training images, 50,000 parameters, 8 minutes a run" in c.value for c in at.caption)
    assert f"Run #{capped} stopped at your teacher's cap of 5 minutes of training" in " ".join(i.value for i in at.info)
    at.button(key="start").click().run()  # the default preset, Seed D: 109,386 parameters
    assert [e.value for e in at.error] == ["This class allows at most 50,000 parameters a run; this stack has 109,386."]
    assert [run.id for run in store.list_runs()] == [capped], "nothing started"

    at.switch_page("pages/search.py").run()  # a search's controls too
    assert not at.exception, at.exception
    assert (at.slider(key="search_epochs").proto.max, at.slider(key="search_epochs").value) == (5, 5)
    assert at.select_slider(key="search_images").options == ["2000", "5000", "10000", "15000"]
    assert (at.number_input(key="search_minutes").proto.max, at.number_input(key="search_minutes").value) == (8, 8)


def test_a_students_new_tab_watches_her_own_run_not_the_one_training(home):
    """A tab that started no run (a second tab, or a session the server lost after a dropped connection,
    signed in again): Build & Train's panel shows her own run, queued behind Bob's, not his."""
    store = RunStore()
    bobs = store.create_run(SPEC, name="bobs", owner="class:bob", owner_name="Bob")
    assert try_start(store, bobs, max_parallel=1)  # this test process stands in for Bob's training
    adas = store.create_run(SPEC, name="adas", owner="class:ada", owner_name="Ada")
    store.people.add_sign_in("adas-new-tab", "class:ada", "Ada", False)
    at = shared_app(CLASS)
    at.session_state[SIGN_IN] = "adas-new-tab"  # and no watch_run: this session started nothing
    at.run()
    assert not at.exception, at.exception
    headers = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert [header.startswith(f"#### #{adas} adas (16) · queued") for header in headers] == [True], headers

"""The Challenge page through AppTest: a teacher opens a challenge, a student's run that breaks a constraint
is refused with the constraint named, a run within them is submitted and the public board shows it, and
closing the challenge reveals the final ranking; alone, a learner sets themselves one. Runs are store
rows with test probabilities (tests/test_evaluation.py's fake_probs): no training."""

import datetime

import numpy as np
from streamlit.testing.v1 import AppTest
from test_access import CLASS, quick_hashes, served_to_others, shared_app  # noqa: F401  (fixtures)

from fmnist.app.navigation import CHALLENGE_PAGE
from fmnist.app.session import SIGN_IN
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.worker import try_start

from helpers import APP


def fake_probs(labels: np.ndarray, right: float, seed: int) -> np.ndarray:
    """Probabilities that pick the true class for about `right` of the images (tests/test_evaluation.py's, without its
    module's Keras imports)."""
    rng = np.random.default_rng(seed)
    predicted = np.where(rng.random(len(labels)) < right, labels, rng.integers(0, 10, len(labels)))
    probs = rng.random((len(labels), 10)).astype(np.float32) * 0.5
    probs[np.arange(len(labels)), predicted] += 1.0
    return probs / probs.sum(axis=1, keepdims=True)


def finished_run(store: RunStore, labels: np.ndarray, widths, owner: dict, seed: int) -> int:
    run_id = store.create_run(dense_spec(list(widths), epochs=2), train_limit=10000, **owner)
    try_start(store, run_id, max_parallel=1)
    np.save(store.probs_path(run_id), fake_probs(labels, 0.85, seed))
    store.finish(run_id, "finished", test_loss=0.4, test_acc=0.85, train_s=30.0)
    return run_id


def on_challenge_page(at: AppTest, token: str | None = None) -> AppTest:
    if token:
        at.session_state[SIGN_IN] = token
    at.switch_page(CHALLENGE_PAGE).run()
    assert not at.exception, at.exception
    return at


def test_a_class_challenge_from_opening_to_the_final_ranking(home, dataset, served_to_others):  # noqa: F811
    store = RunStore()
    ada = {"owner": "class:ada", "owner_name": "Ada"}
    big = finished_run(store, dataset.y_test, (256, 128), ada, seed=1)
    small = finished_run(store, dataset.y_test, (32,), ada, seed=2)
    store.people.add_sign_in("teachers-tab", "class:hopper", "Ms Hopper", True)
    store.people.add_sign_in("adas-tab", "class:ada", "Ada", False)

    teacher = on_challenge_page(shared_app(CLASS), "teachers-tab")
    teacher.text_input(key="ch_title").input("Under 100k")
    teacher.number_input(key="ch_max_params").set_value(100000)
    teacher.button(key="ch_open").click().run()
    assert not teacher.exception, teacher.exception
    assert "Opened “Under 100k”" in teacher.success[0].value
    challenge, = store.challenges.all()
    assert (challenge.constraints.max_params, challenge.opened_by) == (100000, "class:hopper")

    student = on_challenge_page(shared_app(CLASS), "adas-tab")
    assert not [e for e in student.expander if e.label == "Open a challenge"], "a student opens no challenge"
    assert "at most 100,000 parameters" in " ".join(c.value for c in student.caption)
    assert student.selectbox(key="ch_run").options[1].endswith("breaks: at most 100,000 parameters")
    student.selectbox(key="ch_run").set_value(big)
    student.button(key="ch_submit").click().run()
    assert [e.value for e in student.error] == [f"Run #{big} breaks the challenge's constraints: at most 100,000 parameters; "
                                                f"run #{big} has 235,146."]
    student.selectbox(key="ch_run").set_value(small)
    student.button(key="ch_submit").click().run()
    assert not student.exception and not student.error, student.error
    assert f"Submitted run #{small}" in student.success[0].value
    board = student.dataframe[0].value
    assert list(board.columns) == ["rank", "person", "run", "name", "parameters", "public accuracy", "submissions"]
    assert (board["person"][0], board["run"][0]) == ("Ada", small)
    text = " ".join(m.value for m in student.markdown)
    assert "Ranked on **the public part**: 3,000 of the 10,000 test images" in text
    assert "their scores stay hidden until the deadline" in text
    assert [e.label for e in student.expander] == ["Your submissions (1)"]
    assert not {"ch_close", "ch_delete"} & {button.key for button in student.button}, "only its opener or a teacher closes it"

    teacher.button(key="ch_close").click().run()
    assert not teacher.exception, teacher.exception
    student.run()
    final = student.dataframe[0].value
    assert "private accuracy" in final.columns and final["private accuracy"][0] > 0.8
    assert "Final ranking" in [h.value for h in student.subheader]


def test_alone_a_learner_sets_themselves_a_challenge(home, dataset):
    store = RunStore()
    mine = finished_run(store, dataset.y_test, (32,), {}, seed=3)
    at = on_challenge_page(AppTest.from_file(APP, default_timeout=60))
    assert "No challenge yet. Open one above" in at.info[0].value
    at.text_input(key="ch_title").input("Beat 0.85 in 2 epochs")
    at.number_input(key="ch_max_epochs").set_value(2)
    at.button(key="ch_open").click().run()
    assert at.selectbox(key="ch_run").value == mine
    at.button(key="ch_submit").click().run()
    assert not at.exception and not at.error, at.error
    assert at.dataframe[0].value["person"][0] == "this machine"


def test_a_past_deadline_is_refused_on_the_page(home):
    at = on_challenge_page(AppTest.from_file(APP, default_timeout=60))
    at.text_input(key="ch_title").input("Too late")
    at.date_input(key="ch_day").set_value(datetime.date.today() + datetime.timedelta(days=-1))
    at.button(key="ch_open").click().run()
    assert "The deadline must be in the future" in at.error[0].value
    assert RunStore().challenges.all() == []

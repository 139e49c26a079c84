"""Confusion matrix, per-class scores and the cell gallery (library), their figures, and the Evaluate page."""

import shutil
from functools import partial

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fmnist import evaluation
from fmnist.compare_charts import confusion_heatmap, difference_heatmap
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import (
    accuracy,
    cell_examples,
    change_summary,
    confusion_matrix,
    per_class_scores,
    read_probabilities,
    top_classes,
)
from fmnist.models import dense_spec
from fmnist.prediction import load_model, probabilities_on_test_set
from fmnist.runs import ModelFileError
from fmnist.store import RunStore
from fmnist.worker import try_start

from helpers import APP, ml_modules_after

SHIRT, COAT, PULLOVER, TROUSER = (FASHION_MNIST.class_names.index(name) for name in ("Shirt", "Coat", "Pullover", "Trouser"))


def train_tiny(store: RunStore, dataset, widths, name: str, epochs: int = 1) -> int:
    """A real trained run in a few seconds: the first 3,000 training images."""
    from fmnist.training import train_run

    run_id = store.create_run(dense_spec(widths, epochs=epochs), name=name, train_limit=3000)
    assert try_start(store, run_id, max_parallel=1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    return run_id


def fake_probs(labels: np.ndarray, right: float, seed: int) -> np.ndarray:
    """Probabilities that pick the true class for about `right` of the images, a random one otherwise."""
    rng = np.random.default_rng(seed)
    predicted = np.where(rng.random(len(labels)) < right, labels, rng.integers(0, 10, len(labels)))
    probs = rng.random((len(labels), 10)).astype(np.float32) * 0.5
    probs[np.arange(len(labels)), predicted] += 1.0
    return probs / probs.sum(axis=1, keepdims=True)


def scored_run(store: RunStore, probs: np.ndarray, labels: np.ndarray, name: str) -> int:
    """A finished run without a model: its scores and test_probs.npy, as training leaves them."""
    run_id = store.create_run(dense_spec([32], epochs=1), name=name)
    try_start(store, run_id, max_parallel=1)
    test_loss, test_acc = evaluation.test_metrics(probs, labels)  # module-qualified: pytest collects test_* names
    np.save(store.probs_path(run_id), probs)
    store.finish(run_id, "finished", test_loss=test_loss, test_acc=test_acc, train_s=1.0)
    return run_id


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, dataset):
    """One real tiny model, trained once for the module; tests work on copies of its home."""
    home = tmp_path_factory.mktemp("evaluation") / "home"
    train_tiny(RunStore(home), dataset, (64, 32), "small")
    return home


@pytest.fixture
def trained(trained_home, home):
    shutil.copytree(trained_home, home)
    return RunStore(home)


# --- the library ---


def test_confusion_matrix_of_a_hand_made_example():
    labels = np.array([0, 0, 1, 2, 2, 2, 9])
    predicted = np.array([0, 1, 1, 2, 0, 2, 9])
    cm = confusion_matrix(labels, predicted)
    assert cm.shape == (10, 10) and cm.sum() == 7
    expected = np.zeros((10, 10), dtype=int)
    for true_class, predicted_class in [(0, 0), (0, 1), (1, 1), (2, 2), (2, 0), (2, 2), (9, 9)]:
        expected[true_class, predicted_class] += 1
    np.testing.assert_array_equal(cm, expected)
    assert accuracy(cm) == pytest.approx(5 / 7)


def test_per_class_scores_of_a_hand_made_example():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]))
    scores = per_class_scores(cm).set_index("class")
    # class 0: 1 right of 2 predicted, 1 found of 2; class 1: 1 of 2 predicted, 1 of 1 found; class 2: 2 of 2, 2 of 3.
    assert scores.loc[FASHION_MNIST.class_names[0], ["precision", "recall", "F1"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert scores.loc[FASHION_MNIST.class_names[1], ["precision", "recall", "F1"]].tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert scores.loc[FASHION_MNIST.class_names[2], ["precision", "recall", "F1"]].tolist() == pytest.approx([1.0, 2 / 3, 0.8])
    assert scores.loc[FASHION_MNIST.class_names[3]:, ["precision", "recall", "F1", "images"]].to_numpy().sum() == 0, "absent classes score 0"
    assert scores["images"].tolist() == [2, 1, 3] + [0] * 7


def test_confusion_matrix_of_a_real_model_over_the_10000_test_images(trained, dataset):
    [run] = trained.list_runs()
    probs = np.load(trained.probs_path(run.id), allow_pickle=False)
    predicted = np.argmax(probs, axis=1)
    cm = confusion_matrix(dataset.y_test, predicted)
    assert cm.sum() == 10000
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(dataset.y_test, minlength=10))
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(predicted, minlength=10))
    assert np.trace(cm) == np.sum(predicted == dataset.y_test)
    assert accuracy(cm) == pytest.approx(run.test_acc), "the matrix agrees with the accuracy training stored"
    scores = per_class_scores(cm)
    assert np.average(scores["recall"], weights=scores["images"]) == pytest.approx(accuracy(cm))


def test_cell_examples_are_exactly_the_cell_most_confident_first():
    labels = np.array([SHIRT, SHIRT, SHIRT, COAT, SHIRT, SHIRT])
    probs = np.full((6, 10), 0.01, dtype=np.float32)
    for i, (predicted, p) in enumerate([(COAT, 0.6), (SHIRT, 0.9), (COAT, 0.8), (COAT, 0.95), (COAT, 0.7), (PULLOVER, 0.5)]):
        probs[i, predicted] = p
    assert cell_examples(probs, labels, SHIRT, COAT).tolist() == [2, 4, 0], "image 3 is a Coat, 1 and 5 are elsewhere"
    assert cell_examples(probs, labels, SHIRT, SHIRT).tolist() == [1]
    assert cell_examples(probs, labels, COAT, SHIRT).tolist() == []


def test_cell_examples_split_the_test_set_into_the_matrix_cells(dataset):
    probs = fake_probs(dataset.y_test, right=0.8, seed=1)
    cm = confusion_matrix(dataset.y_test, np.argmax(probs, axis=1))
    seen = []
    for true_class in range(10):
        for predicted_class in range(10):
            cell = cell_examples(probs, dataset.y_test, true_class, predicted_class)
            assert len(cell) == cm[true_class, predicted_class]
            assert np.all(np.diff(probs[cell, predicted_class]) <= 0)
            seen.extend(cell)
    assert sorted(seen) == list(range(10000))


def test_top_classes():
    probs = np.array([0.05, 0.6, 0.0, 0.3, 0.05, 0, 0, 0, 0, 0])
    assert top_classes(probs) == [(1, pytest.approx(0.6)), (3, pytest.approx(0.3)), (0, pytest.approx(0.05))]


def test_change_summary_names_the_confusions_that_changed_most():
    cm_a = np.diag([100] * 10)
    cm_a[SHIRT, SHIRT], cm_a[SHIRT, COAT], cm_a[PULLOVER, PULLOVER], cm_a[PULLOVER, COAT] = 80, 20, 95, 5
    cm_b = cm_a.copy()
    cm_b[SHIRT, SHIRT], cm_b[SHIRT, COAT] = 92, 8  # 12 fewer
    cm_b[PULLOVER, PULLOVER], cm_b[PULLOVER, COAT] = 93, 7  # 2 more
    summary = change_summary(cm_a, cm_b)
    assert summary.startswith("B makes 10 fewer mistakes than A (+1.00 accuracy points)")
    assert "most improved: Shirt taken for Coat (-12)" in summary
    assert "most worsened: Pullover taken for Coat (+2)" in summary
    assert change_summary(cm_b, cm_a).startswith("B makes 10 more mistakes than A (-1.00 accuracy points)")
    assert change_summary(cm_a, cm_a) == "B makes the same mistakes as A."


def test_read_probabilities_accepts_only_a_whole_matrix_of_the_right_shape(tmp_path):
    path = tmp_path / "test_probs.npy"
    assert read_probabilities(path, 4) is None, "missing"
    path.write_bytes(b"not numpy at all")
    assert read_probabilities(path, 4) is None, "garbage"
    np.save(path, np.ones((3, 10), dtype=np.float32))
    assert read_probabilities(path, 4) is None, "another shape"
    np.save(path, np.ones((4, 10), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-20])
    assert read_probabilities(path, 4) is None, "truncated"
    np.save(path, np.ones((4, 10), dtype=np.float32))
    assert read_probabilities(path, 4).shape == (4, 10)


def test_probabilities_are_computed_once_from_the_model_and_kept(trained, dataset):
    [run] = trained.list_runs()
    path = trained.probs_path(run.id)
    stored = np.load(path, allow_pickle=False)
    path.unlink()
    probs = probabilities_on_test_set(trained, run.id, dataset, partial(load_model, trained))
    np.testing.assert_allclose(probs, stored, atol=1e-5)
    np.testing.assert_allclose(np.load(path, allow_pickle=False), stored, atol=1e-5)

    def must_not_load(run_id):
        raise AssertionError("the model was loaded although its predictions are stored")

    np.testing.assert_array_equal(probabilities_on_test_set(trained, run.id, dataset, must_not_load), probs)
    trained.model_path(run.id).unlink()
    path.write_bytes(b"damaged")
    with pytest.raises(ModelFileError):
        probabilities_on_test_set(trained, run.id, dataset, partial(load_model, trained))


# --- the figures ---


def test_confusion_heatmap_counts_and_row_shares():
    cm = np.diag([90] * 10) + 1  # one image of each class went to each other class
    cm[SHIRT, COAT] = 7
    fig = confusion_heatmap(cm, chosen=(SHIRT, COAT))
    heatmap, cells = fig.data
    np.testing.assert_array_equal(np.array(heatmap.z), cm)
    assert list(heatmap.x) == list(heatmap.y) == list(FASHION_MNIST.class_names)
    assert heatmap.text[0][0] == "91" and heatmap.zmax == 7, "the scale tops out at the biggest mistake"
    assert fig.layout.yaxis.range == (9.5, -0.5), "the first class on top"
    # One clickable point per cell, at the cell, carrying its count.
    assert len(cells.x) == 100
    at = next(i for i in range(100) if (cells.y[i], cells.x[i]) == ("Shirt", "Coat"))
    assert cells.customdata[at][0] == 7
    [outline] = fig.layout.shapes
    assert (outline.x0 + outline.x1) / 2 == COAT and (outline.y0 + outline.y1) / 2 == SHIRT
    shares, _ = confusion_heatmap(cm, normalise=True).data
    np.testing.assert_allclose(np.array(shares.z).sum(axis=1), 1.0)
    assert shares.text[0][0] == "91.0%" and shares.text[0][1] == "1.0%"


def test_difference_heatmap_shows_b_minus_a_coloured_by_better_or_worse():
    cm_a = np.diag([100] * 10)
    cm_a[SHIRT, SHIRT], cm_a[SHIRT, COAT] = 80, 20
    cm_b = np.diag([100] * 10)
    cm_b[SHIRT, SHIRT], cm_b[SHIRT, COAT] = 90, 10
    [heatmap] = difference_heatmap(cm_a, cm_b).data
    assert heatmap.text[SHIRT][SHIRT] == "+10" and heatmap.text[SHIRT][COAT] == "-10" and heatmap.text[0][0] == ""
    z = np.array(heatmap.z)
    assert z[SHIRT, SHIRT] > 0 and z[SHIRT, COAT] > 0, "more right and fewer mistakes are both better"
    assert heatmap.zmid == 0 and heatmap.zmin == -heatmap.zmax


# --- the Evaluate page ---


def open_evaluate() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, at.exception
    return at


def metric(at, label) -> str:
    return next(m.value for m in at.metric if m.label == label)


def gallery_indices(at) -> list[int]:
    """The test images the gallery shows, in order (each caption starts with '#index')."""
    return [int(c.value.split()[0][1:]) for c in at.caption if c.value.startswith("#")]


@pytest.mark.parametrize(("page", "says"), [
    ("pages/evaluate.py", "No run has test results yet"),
    ("pages/inside.py", "There is no trained model yet"),
    ("pages/leaderboard.py", "No runs yet"),
])
def test_a_page_that_needs_runs_says_how_to_train_one(home, page, says):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert any(says in i.value for i in at.info)
    assert any(link.proto.label == "Build & Train" for link in at.get("page_link")), "a link to Build & Train"


def test_evaluate_shows_the_best_run_its_matrix_and_scores(trained, dataset):
    [real] = trained.list_runs()
    worse = scored_run(trained, fake_probs(dataset.y_test, right=0.3, seed=2), dataset.y_test, "worse")
    at = open_evaluate()
    assert at.selectbox(key="eval_run").value == real.id, "the best run is the default"
    assert at.selectbox(key="eval_run").options == [f"#{real.id} small (64-32) · test accuracy {real.test_acc:.4f}",
                                                    f"#{worse} worse (32) · test accuracy {trained.get(worse).test_acc:.4f}"]
    assert metric(at, "Test accuracy") == f"{real.test_acc:.4f}"
    assert metric(at, "Test loss") == f"{real.test_loss:.4f}"
    scores = at.dataframe[0].value
    assert list(scores["class"]) == list(FASHION_MNIST.class_names) and scores["images"].sum() == 10000

    at.selectbox(key="eval_run").select(worse).run()
    assert metric(at, "Test accuracy") == f"{trained.get(worse).test_acc:.4f}"


def test_the_gallery_shows_exactly_the_images_of_the_chosen_cell(trained, dataset):
    [run] = trained.list_runs()
    probs = np.load(trained.probs_path(run.id), allow_pickle=False)
    predicted = np.argmax(probs, axis=1)
    at = open_evaluate()
    at.selectbox(key="eval_true").select(SHIRT)
    at.selectbox(key="eval_predicted").select(COAT).run()
    in_cell = np.flatnonzero((dataset.y_test == SHIRT) & (predicted == COAT))
    expected = sorted(in_cell, key=lambda i: -probs[i, COAT])
    shown = gallery_indices(at)
    assert len(in_cell) > 0 and shown == expected[:40]
    assert any(m.value.startswith(f"**{len(in_cell)}** test images of **Shirt** classified as **Coat**") for m in at.markdown)
    first = next(c.value for c in at.caption if c.value.startswith("#"))
    assert f"**Coat {probs[shown[0], COAT]:.0%}**" in first

    at.selectbox(key="eval_true").select(TROUSER)
    at.selectbox(key="eval_predicted").select(TROUSER).run()
    right = np.flatnonzero((dataset.y_test == TROUSER) & (predicted == TROUSER))
    assert len(gallery_indices(at)) == 40 < len(right)
    at.button(key="eval_more").click().run()
    assert gallery_indices(at) == sorted(right, key=lambda i: -probs[i, TROUSER])[:80]


def test_missing_predictions_are_computed_from_the_model_and_kept(trained):
    [run] = trained.list_runs()
    path = trained.probs_path(run.id)
    path.unlink()
    at = open_evaluate()
    assert metric(at, "Test accuracy") == f"{run.test_acc:.4f}"
    assert read_probabilities(path, 10000) is not None


def test_a_run_without_model_or_predictions_is_an_error_not_a_traceback(trained):
    [run] = trained.list_runs()
    trained.probs_path(run.id).unlink()
    trained.model_path(run.id).write_bytes(b"not a keras file")
    at = open_evaluate()
    assert not at.exception
    [error] = at.error
    assert f"Run #{run.id} cannot be evaluated" in error.value and "unreadable" in error.value


def test_compare_two_runs(home, dataset):
    store = RunStore()
    probs_a, probs_b = fake_probs(dataset.y_test, right=0.9, seed=3), fake_probs(dataset.y_test, right=0.7, seed=4)
    a, b = scored_run(store, probs_a, dataset.y_test, "a"), scored_run(store, probs_b, dataset.y_test, "b")
    at = open_evaluate()
    assert at.selectbox(key="eval_run").value == a and at.selectbox(key="eval_other").value == b
    cm_a = confusion_matrix(dataset.y_test, np.argmax(probs_a, axis=1))
    cm_b = confusion_matrix(dataset.y_test, np.argmax(probs_b, axis=1))
    mistakes = int((cm_b.sum() - np.trace(cm_b)) - (cm_a.sum() - np.trace(cm_a)))
    summary = next(m.value for m in at.markdown if m.value.startswith("B makes"))
    assert summary.startswith(f"B makes {mistakes} more mistakes than A")
    assert summary == change_summary(cm_a, cm_b)


def test_evaluate_and_leaderboard_with_stored_predictions_do_not_import_tensorflow(home, dataset):
    """With predictions stored, both pages stay fast: TensorFlow loads only to compute missing ones."""
    scored_run(RunStore(), fake_probs(dataset.y_test, right=0.8, seed=5), dataset.y_test, "stored")
    steps = (
        "at.switch_page('pages/evaluate.py').run()\n"
        "assert not at.exception and at.metric, at.exception\n"
        "at.switch_page('pages/leaderboard.py').run()\n"
        "at.session_state['lb_table'] = {'selection': {'rows': [0]}}\n"
        "at.run()\n"
        "assert not at.exception and at.download_button, at.exception"
    )
    assert ml_modules_after(steps) == []

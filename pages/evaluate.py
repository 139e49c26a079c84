"""Evaluate: where a trained run goes wrong on the 10,000 test images, and how two runs differ."""

from functools import partial

import numpy as np
import streamlit as st

from fmnist.app.activity import run_choice
from fmnist.app.caches import dataset_or_stop, get_store, run_probabilities
from fmnist.app.navigation import INSIDE_PAGE, INSIDE_REQUEST, enter_through_navigation, no_runs_yet
from fmnist.compare_charts import confusion_heatmap, difference_heatmap
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import (
    accuracy,
    cell_examples,
    change_summary,
    confusion_matrix,
    confusion_summary,
    most_confused,
    per_class_scores,
    test_metrics,
    top_classes,
)
from fmnist.imaging import enlarge
from fmnist.leaderboard import best_run, training_runs
from fmnist.runs import ModelFileError

GALLERY_STEP = 40
PER_ROW = 8
ZOOM = 3  # 28×28 pixels shown as 84×84
CLASSES = list(range(FASHION_MNIST.num_classes))
NO_TOOLBAR = {"displayModeBar": False}


@st.cache_data(max_entries=16, show_spinner=False)
def predictions(home: str, run_id: int, modified_ns: int, _dataset) -> np.ndarray:
    """Keyed by the file's version, so a recomputed file is read anew. Raises ModelFileError."""
    return run_probabilities(run_id, _dataset)


def run_predictions(run, dataset) -> np.ndarray | None:
    """The run's test probabilities, computed from its model the first time; None after saying why not."""
    store = get_store()
    path = store.probs_path(run.id)
    modified_ns = path.stat().st_mtime_ns if path.is_file() else 0
    try:
        with st.spinner(f"Computing run #{run.id}'s predictions for the {FASHION_MNIST.test_size:,} test images (once: they are kept)…"):
            return predictions(str(store.home), run.id, modified_ns, dataset)
    except ModelFileError as e:
        st.error(f"**Run #{run.id} cannot be evaluated.** {e} Delete it on the Leaderboard or train it again.",
                 icon=":material/broken_image:")
        return None


def describe(run) -> str:
    return f"{run_choice(run)} · test accuracy {run.test_acc:.4f}"


def chart_key() -> str:
    return f"eval_cm_{st.session_state.get('eval_cm_version', 0)}"


def pick_clicked_cell(key: str) -> None:
    """A click on the matrix chooses the cell in the two select boxes below it."""
    points = st.session_state[key].selection.points
    if points:
        st.session_state.eval_true = FASHION_MNIST.class_names.index(points[0]["y"])
        st.session_state.eval_predicted = FASHION_MNIST.class_names.index(points[0]["x"])


def forget_click() -> None:
    """A cell chosen in the select boxes: a new chart forgets the last click, so clicking that cell again counts."""
    st.session_state.eval_cm_version = st.session_state.get("eval_cm_version", 0) + 1


def show_more() -> None:
    st.session_state.eval_shown += GALLERY_STEP


def caption(probs: np.ndarray, index: int) -> str:
    """The image's number, then the model's top three classes, one a line, its answer in bold."""
    lines = [f"{FASHION_MNIST.class_names[c]} {p:.0%}" for c, p in top_classes(probs)]
    return "  \n".join([f"#{index}", f"**{lines[0]}**", *lines[1:]])


def gallery(indices: np.ndarray, probs: np.ndarray, dataset) -> None:
    for start in range(0, len(indices), PER_ROW):
        for column, i in zip(st.columns(PER_ROW), indices[start:start + PER_ROW]):
            column.image(enlarge(dataset.x_test[i], ZOOM), alt=f"Test image #{i}, a {dataset.info.class_names[dataset.y_test[i]]}")
            column.caption(caption(probs[i], i))


def confusion_section(cm: np.ndarray) -> None:
    st.subheader("Confusion matrix")
    normalise = st.toggle("Share of each true class (rows add up to 100%)", key="eval_normalise")
    matrix, scores = st.columns([3, 2], gap="large")
    chosen = (st.session_state.eval_true, st.session_state.eval_predicted)
    key = chart_key()
    matrix.plotly_chart(
        confusion_heatmap(cm, normalise, chosen), key=key, on_select=partial(pick_clicked_cell, key),
        selection_mode="points", config=NO_TOOLBAR,
    )
    matrix.caption("Rows: the true class; columns: what the model said. Click a cell to see its images below. "
                   + confusion_summary(cm))
    scores.dataframe(
        per_class_scores(cm), hide_index=True, width="stretch",
        column_config={name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "F1")},
    )
    scores.caption("Precision: of the images given this class, the share that are it. "
                   "Recall: of the images of this class, the share found. F1: their harmonic mean.")


def gallery_section(run_id: int, probs: np.ndarray, dataset) -> None:
    st.subheader("The images in a cell")
    true_box, predicted_box = st.columns(2)
    true_class = true_box.selectbox("True class", CLASSES, format_func=FASHION_MNIST.class_names.__getitem__, key="eval_true", on_change=forget_click)
    predicted_class = predicted_box.selectbox("Predicted class", CLASSES, format_func=FASHION_MNIST.class_names.__getitem__,
                                              key="eval_predicted", on_change=forget_click)
    indices = cell_examples(probs, dataset.y_test, true_class, predicted_class)
    cell = (run_id, true_class, predicted_class)
    if st.session_state.get("eval_cell") != cell:
        st.session_state.eval_cell, st.session_state.eval_shown = cell, GALLERY_STEP
    shown = indices[:st.session_state.eval_shown]
    what = "correctly" if true_class == predicted_class else f"as **{FASHION_MNIST.class_names[predicted_class]}**"
    st.markdown(f"**{len(indices)}** test images of **{FASHION_MNIST.class_names[true_class]}** classified {what}"
                + (", the most confident first; under each, the model's top three." if len(indices) else "."))
    if len(shown):
        with st.container(key="eval_gallery"):
            gallery(shown, probs, dataset)
        follow_on_inside(run_id, shown)
    if len(indices) > len(shown):
        more = min(GALLERY_STEP, len(indices) - len(shown))
        st.button(f"Show {more} more (of {len(indices) - len(shown)} left)", key="eval_more", on_click=show_more,
                  icon=":material/expand_more:")


def follow_on_inside(run_id: int, shown: np.ndarray) -> None:
    """One of the gallery's images through every layer of the model, on the Inside page."""
    pick, go = st.columns([2, 3], vertical_alignment="bottom")
    index = pick.selectbox("Follow an image through the network", shown.tolist(), format_func=lambda i: f"#{i}", key="eval_follow")
    if go.button("Open it on Inside", icon=":material/route:", key="eval_inside"):
        st.session_state[INSIDE_REQUEST] = {"run": run_id, "index": int(index)}
        st.switch_page(INSIDE_PAGE)


def comparison_section(run, cm: np.ndarray, scored: list, dataset) -> None:
    st.subheader("Compare with another run")
    others = {r.id: r for r in scored if r.id != run.id}
    if not others:
        st.info("Train another run to see how its mistakes differ from this one's.", icon=":material/compare:")
        return
    matrix, side = st.columns([3, 2], gap="large")
    other_id = side.selectbox("Run B (A is the run above)", list(others), format_func=lambda r: describe(others[r]), key="eval_other")
    with side:
        other_probs = run_predictions(others[other_id], dataset)
    if other_probs is None:
        return
    cm_b = confusion_matrix(dataset.y_test, np.argmax(other_probs, axis=1))
    side.markdown(change_summary(cm, cm_b))
    side.caption(f"Each cell: images in B (#{other_id}) minus images in A (#{run.id}). Blue where B does "
                 "better (more right on the diagonal, fewer mistakes off it), red where it does worse.")
    matrix.plotly_chart(difference_heatmap(cm, cm_b), key="eval_diff", config=NO_TOOLBAR)


enter_through_navigation()
st.title("Evaluate")
store = get_store()
scored = sorted((r for r in training_runs(store.list_runs()) if r.test_acc is not None), key=lambda r: -r.test_acc)
if not scored:
    no_runs_yet("No run has test results yet. Train a model on the Build & Train page; it is evaluated on the "
                f"{FASHION_MNIST.test_size:,} test images when training ends.")
    st.stop()
dataset = dataset_or_stop()

by_id = {r.id: r for r in scored}
ids = list(by_id)
run_id = st.selectbox("Run", ids, index=ids.index(best_run(scored).id), format_func=lambda r: describe(by_id[r]), key="eval_run")
run = by_id[run_id]
probs = run_predictions(run, dataset)
if probs is None:
    st.stop()

cm = confusion_matrix(dataset.y_test, np.argmax(probs, axis=1))
true_class, predicted_class = most_confused(cm)
st.session_state.setdefault("eval_true", true_class)
st.session_state.setdefault("eval_predicted", predicted_class)
loss, _ = test_metrics(probs, dataset.y_test)
cols = st.columns(3)
cols[0].metric("Test accuracy", f"{accuracy(cm):.4f}")
cols[1].metric("Test loss", f"{loss:.4f}")
cols[2].metric("Mistakes", f"{int(cm.sum() - np.trace(cm)):,}", help=f"of the {int(cm.sum()):,} test images")

confusion_section(cm)
gallery_section(run.id, probs, dataset)
comparison_section(run, cm, scored, dataset)

"""Classify: draw or upload a clothing item and see what the model sees and predicts."""

import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from fmnist.access import AccessError
from fmnist.charts import probability_bars
from fmnist.data import CLASS_NAMES, examples_per_class
from fmnist.evaluation import percent, top_k
from fmnist.imaging import EmptyImageError, ImageError, enlarge, open_image, prepare, preview
from fmnist.inside_charts import InsideError, saliency_overlay
from fmnist.leaderboard import best_run
from fmnist.models import PRESETS, with_training
from fmnist.prediction import predict_image  # the one page that runs a model: TensorFlow loads with it
from fmnist.runs import LimitError, ModelFileError
from fmnist.ui import (
    INSIDE_PAGE,
    INSIDE_REQUEST,
    TRAIN_PAGE,
    acting_person,
    dataset_or_message,
    enter_through_navigation,
    get_store,
    load_run_inside,
    load_run_model,
    max_runs_per_person,
    run_label,
)
from fmnist.worker import launch

STARTER = "Seed D: 128-64"
# The button's promise, from `python -m fmnist train --layers 128,64 --epochs 10` on 2 CPU cores
# (README: "Measured on this project's machine").
STARTER_TIME = "about 35 seconds"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
SHOWN = 280  # px: the canvas, the originals and the enlarged 28×28 image share a size


@st.fragment(run_every=1.0)
def starter_progress(run_id: int):
    """The starter model's training; the whole page reloads once it ends."""
    run = get_store().get(run_id)
    if not run.active:
        st.rerun()
    st.progress(run.fraction_done(), text=f"Training {run_label(run)}: epoch {max(run.epoch, 1)}/{run.spec.epochs}")


def offer_to_train():
    store = get_store()
    st.info("There is no trained model yet: a model has to learn from the data before it can classify.", icon=":material/info:")
    starter = store.get(st.session_state.get("classify_starter", -1))
    if starter and starter.active:
        starter_progress(starter.id)
    else:
        if starter and starter.error:
            st.error(f"Run #{starter.id} {starter.status}: {starter.error}", icon=":material/error:")
        label = f"Train {STARTER}, 10 epochs ({STARTER_TIME} on 2 CPU cores)"
        if st.button(label, type="primary", icon=":material/play_arrow:", key="classify_train") and dataset_or_message() is not None:
            try:
                st.session_state.classify_starter = launch(store, with_training(PRESETS[STARTER], epochs=10), name=STARTER,
                                                           owner=acting_person(), max_runs=max_runs_per_person())
                st.rerun()
            except (AccessError, LimitError) as e:
                st.error(str(e), icon=":material/block:")
    st.page_link(TRAIN_PAGE, label="Or shape your own network on Build & Train", icon=":material/model_training:")


def pick_model(runs) -> int:
    labels = {run.id: f"{run_label(run)} · test accuracy {run.test_acc:.4f}" for run in runs}
    best = best_run(runs)
    return st.selectbox("Model", list(labels), index=list(labels).index(best.id), format_func=labels.get, key="classify_run",
                        help="Every run that finished with a saved model; the one with the best test accuracy is picked at first.")


def model_or_message(run_id: int):
    try:
        return load_run_model(run_id)
    except ModelFileError as e:
        st.error(f"**The model of run #{run_id} cannot be loaded.** {e} Pick another model, or train this one again "
                 "on Build & Train.", icon=":material/error:")
        return None


def show_prediction(model, image: Image.Image, seen, verdict, key: str, true_label: int | None = None):
    """What the model receives (in the `seen` column) and what it predicts (in `verdict`)."""
    try:
        prepared = prepare(image)
    except EmptyImageError as e:
        seen.info(f"{e} Draw or upload a clothing item.", icon=":material/draw:")
        return
    seen.image(enlarge(prepared.pixels), caption="What the model sees: 28×28", width=SHOWN, output_format="PNG")
    probs = predict_image(model, prepared.image01)
    with seen:
        why(prepared.image01, key, true_label)
    (name, prob), *others = top_k(probs, 3)
    with verdict:
        cols = st.columns(2)
        cols[0].metric("Prediction", name, f"{percent(prob)} sure", delta_color="off", delta_arrow="off")
        if true_label is not None:
            cols[1].metric("True label", CLASS_NAMES[true_label])
            if name == CLASS_NAMES[true_label]:
                st.badge("right", icon=":material/check:", color="green")
            else:
                st.badge("wrong", icon=":material/close:", color="red")
        st.caption("Then: " + " · ".join(f"{other} {percent(p)}" for other, p in others))
        st.plotly_chart(probability_bars(probs), key=f"{key}_bars", config={"displayModeBar": False})


def why(image01, key: str, true_label: int | None) -> None:
    """The saliency map beside the prediction, and a way to follow the image through the network on Inside."""
    run_id = st.session_state.classify_run
    try:
        look = load_run_inside(run_id).look(image01)
    except InsideError as e:  # a model of another shape: the prediction still shows
        st.caption(f"No saliency map: {e}")
        return
    st.plotly_chart(saliency_overlay(image01, look.saliency, height=SHOWN), key=f"{key}_saliency", config={"displayModeBar": False})
    st.caption("Why: red pixels pushed the model towards its answer, blue ones away (integrated gradients).")
    if key == "test":
        request = {"run": run_id, "index": st.session_state.classify_test_index}
    else:  # the drawing or upload goes along: Inside offers it as its image
        st.session_state.classify_last = {"image01": image01, "what": "drawing" if key == "draw" else "upload", "run": run_id}
        request = {"run": run_id, "classify": True}
    if st.button("Follow it through the network", key=f"{key}_inside", icon=":material/route:"):
        st.session_state[INSIDE_REQUEST] = request
        st.switch_page(INSIDE_PAGE)


def draw_tab(model):
    source, seen, verdict = st.columns([1, 1, 1.4], gap="medium")
    with source:
        brush = st.slider("Brush size", 4, 40, 18, key="classify_brush",
                          help="Fashion-MNIST items are filled shapes: a wide brush looks most like them.")
        st.space("small")  # room for the canvas' toolbar, which sits above it
        drawing = st_canvas(
            stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
            width=SHOWN, height=SHOWN, drawing_mode="freedraw", return_image_data=True, key="classify_canvas",
        )
        st.caption("A light item on black, like the dataset. Undo, redo and clear are in the toolbar.")
    if drawing.image_data is None:
        seen.info("Draw a clothing item on the black canvas: the prediction follows every stroke.", icon=":material/draw:")
    else:
        show_prediction(model, Image.fromarray(drawing.image_data), seen, verdict, key="draw")


def upload_tab(model):
    source, seen, verdict = st.columns([1, 1, 1.4], gap="medium")
    upload = source.file_uploader("A photo or drawing of one item", type=UPLOAD_TYPES, key="classify_upload",
                                  help="Any size and colour; the item is cropped, centred and shrunk to 28×28.")
    if upload is None:
        seen.info("Upload a picture of a clothing item: on a plain background it works best.", icon=":material/upload:")
        return
    try:
        image = open_image(upload.getvalue())
        show_prediction(model, image, seen, verdict, key="upload")
    except ImageError as e:
        source.error(f"**{upload.name} cannot be used.** {e}", icon=":material/broken_image:")
        return
    source.image(preview(image, SHOWN), caption=f"{upload.name} · {image.width}×{image.height} {image.mode}")


def test_image_tab(model):
    source, seen, verdict = st.columns([1, 1, 1.4], gap="medium")
    with source:
        label = st.selectbox("Class", range(len(CLASS_NAMES)), format_func=CLASS_NAMES.__getitem__, key="classify_test_class")
        dataset = dataset_or_message()
        if dataset is not None and st.button("Pick a random test image", icon=":material/shuffle:", key="classify_pick"):
            # seed=None: a fresh pick on every press.
            st.session_state.classify_test_index = int(examples_per_class(dataset.y_test, 1, seed=None)[label][0])
    index = st.session_state.get("classify_test_index")
    if dataset is None or index is None:
        seen.info("Pick a class and press the button: one of the 10,000 test images, which no model trained on.", icon=":material/shuffle:")
        return
    original = dataset.x_test[index]
    source.image(enlarge(original), caption=f"Test image #{index}", width=SHOWN, output_format="PNG")
    show_prediction(model, Image.fromarray(original), seen, verdict, key="test", true_label=int(dataset.y_test[index]))


enter_through_navigation()
st.title("Classify")
st.caption("Draw or upload a clothing item and see what the model sees and predicts.")
runs = [run for run in get_store().list_runs() if run.test_acc is not None]
if not runs:
    offer_to_train()
elif (model := model_or_message(pick_model(runs))) is not None:
    draw, upload, test = st.tabs([":material/draw: Draw", ":material/upload: Upload", ":material/shuffle: Try a test image"])
    with draw:
        draw_tab(model)
    with upload:
        upload_tab(model)
    with test:
        test_image_tab(model)

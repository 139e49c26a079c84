"""Classify: draw or upload a clothing item and see what the model sees and predicts."""

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from fmnist import services
from fmnist.accessibility import name_drawing_canvas
from fmnist.app.activity import run_choice, run_label
from fmnist.app.caches import dataset_or_message, get_store, load_run_inside, load_run_model, load_run_outlier_check, open_upload
from fmnist.app.navigation import INSIDE_PAGE, INSIDE_REQUEST, TRAIN_PAGE, enter_through_navigation
from fmnist.app.session import acting
from fmnist.charts import probability_bars
from fmnist.data import DatasetError, examples_per_class
from fmnist.dataset import FASHION_MNIST
from fmnist.estimates import speeds_here, time_here
from fmnist.evaluation import percent, top_k
from fmnist.imaging import (
    WHOLE,
    EmptyImageError,
    ImageError,
    as_dataset_image,
    enlarge,
    prepare,
    prepare_or_whole,
    preview,
    preview_with_box,
)
from fmnist.inside_charts import InsideError, saliency_overlay
from fmnist.leaderboard import best_run, training_runs
from fmnist.models import PRESETS, with_training
from fmnist.outliers import item_pieces, percent_text
from fmnist.prediction import predict_image  # the one page that runs a model: TensorFlow loads with it
from fmnist.runs import ModelFileError

STARTER = "Seed D: 128-64"
STARTER_EPOCHS = 10
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
SHOWN = 280  # px: the canvas, the originals and the enlarged 28×28 image share a size
STEP = 170  # px: each of an upload's steps, four in a row
INVERT_CHOICES = {"auto": "Automatic", "invert": "Invert", "keep": "Don't invert"}
INVERT_VALUES = {"auto": None, "invert": True, "keep": False}
CANVAS_NAME = "Drawing canvas: draw a clothing item with a mouse, pen or finger"
SEEN_ALT = "The picture as the model receives it: 28×28 grey pixels, the item light on black"


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
        spec = with_training(PRESETS[STARTER], epochs=STARTER_EPOCHS)
        label = f"Train {STARTER}, {STARTER_EPOCHS} epochs ({time_here(spec, speeds_here(store.list_runs())).text()})"
        if st.button(label, type="primary", icon=":material/play_arrow:", key="classify_train") and dataset_or_message() is not None:
            try:
                st.session_state.classify_starter = services.start_training(store, acting(), spec, name=STARTER)
                st.rerun()
            except services.REFUSED as e:
                st.error(str(e), icon=":material/block:")
    st.page_link(TRAIN_PAGE, label="Or shape your own network on Build & Train", icon=":material/model_training:")


def pick_model(runs) -> int:
    labels = {run.id: f"{run_choice(run)} · test accuracy {run.test_acc:.4f}" for run in runs}
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


def show_prediction(model, prepared, seen, verdict, key: str, true_label: int | None = None, show_seen: bool = True, no_item: bool = False):
    """What the model receives (in the `seen` column, unless the steps show it) and what it predicts (in `verdict`);
    no_item: no item stood out, so the whole picture was classified."""
    if show_seen:
        seen.image(enlarge(prepared.pixels), caption=f"What the model sees: {FASHION_MNIST.size_text}", width=SHOWN, output_format="PNG",
                   alt=SEEN_ALT)
    probs = predict_image(model, prepared.image01)
    with seen:
        why(prepared.image01, key, true_label)
    (name, prob), *others = top_k(probs, 3)
    with verdict:
        unusual_notice(prepared.image01, no_item)
        cols = st.columns(2)
        cols[0].metric("Prediction", name, f"{percent(prob)} sure", delta_color="off", delta_arrow="off")
        if true_label is not None:
            cols[1].metric("True label", FASHION_MNIST.class_names[true_label])
            if name == FASHION_MNIST.class_names[true_label]:
                st.badge("right", icon=":material/check:", color="green")
            else:
                st.badge("wrong", icon=":material/close:", color="red")
        st.caption("Then: " + " · ".join(f"{other} {percent(p)}" for other, p in others))
        st.plotly_chart(probability_bars(probs), key=f"{key}_bars", config={"displayModeBar": False})


def unusual_notice(image01, no_item: bool) -> None:
    """The notice when the picture is unlike the training images, with the measure and its threshold stated."""
    try:
        outputs, check = load_run_outlier_check(st.session_state.classify_run)
    except (InsideError, DatasetError) as e:
        st.caption(f"No unusual-picture check: {e}")
        return
    features, probs = outputs(image01[np.newaxis])
    score = float(check.scores(probs, features)[0])
    pieces = int(item_pieces(image01[np.newaxis])[0])
    how = (f"Its {check.measure} in the model's last hidden layer is {score:.3g}, and its item is in {pieces} "
           f"piece{'s' if pieces != 1 else ''}; the notice shows above {check.threshold:.3g} or from {check.pieces_limit} pieces, "
           f"as it does for {percent_text(check.flagged_share)} of {check.held_out:,} held-out images ({check.source}), "
           f"{percent_text(check.pieces_share)} for their pieces.")
    if no_item:  # every training image is one item on a plain background
        how = f"No item stands out from its background, as one does in every training image. {how}"
    if check.unlike(score, no_item, pieces):
        st.warning("**This does not look like the training images.** Fashion-MNIST holds centred product shots of "
                   "clothes, shoes and bags; the model gives every picture one of its ten classes all the same, so take "
                   f"the prediction below with care. {how}", icon=":material/help:")
    else:
        st.caption(f"Looks like the training images. {how}")


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
        name_drawing_canvas(CANVAS_NAME)
        st.caption("A light item on black, like the dataset. Undo, redo and clear are in the toolbar.")
        st.caption("Drawing needs a mouse, pen or finger. Without one, the **Upload** tab classifies a picture "
                   "and **Try a test image** a test image, with the keyboard alone.")
    if drawing.image_data is None:
        seen.info("Draw a clothing item on the black canvas: the prediction follows every stroke.", icon=":material/draw:")
        return
    try:
        prepared = prepare(Image.fromarray(drawing.image_data))
    except EmptyImageError as e:
        seen.info(f"{e} Draw a clothing item.", icon=":material/draw:")
        return
    show_prediction(model, prepared, seen, verdict, key="draw")


def reset_corrections(upload) -> None:
    """A new picture starts with the automatic choices: a crop box set for another picture means nothing here."""
    if st.session_state.get("classify_upload_id") != upload.file_id:
        st.session_state.classify_upload_id = upload.file_id
        st.session_state.classify_manual_crop = False
        st.session_state.classify_invert = "auto"


def start_manual_crop() -> None:
    """Turning the crop by hand on starts the sliders at the box that was found (or the whole picture)."""
    left, top, right, bottom = st.session_state.get("classify_found_box", WHOLE)
    st.session_state.classify_crop_x = (int(100 * left), int(np.ceil(100 * right)))
    st.session_state.classify_crop_y = (int(100 * top), int(np.ceil(100 * bottom)))


def crop_by_hand(expanded: bool):
    """The person's overrides (the colours in session state, read by upload_tab); returns their crop box
    as shares of the picture, or None."""
    with st.expander("Correct the crop or the colours", expanded=expanded, icon=":material/crop:"):
        st.radio("Colours", list(INVERT_CHOICES), format_func=INVERT_CHOICES.get, key="classify_invert", horizontal=True,
                 help="Fashion-MNIST shows a light item on black. Automatic inverts a picture whose item is darker than its background.")
        manual = st.toggle("Set the crop box by hand", key="classify_manual_crop", on_change=start_manual_crop)
        box = None
        if manual:
            x = st.slider("Left to right (% of the width)", 0, 100, (0, 100), key="classify_crop_x")
            y = st.slider("Top to bottom (% of the height)", 0, 100, (0, 100), key="classify_crop_y")
            if x[1] > x[0] and y[1] > y[0]:
                box = (x[0] / 100, y[0] / 100, x[1] / 100, y[1] / 100)
            else:
                st.warning("The box needs a width and a height: move the sliders apart.", icon=":material/crop_free:")
    return box


def picture_caption(name: str, image: Image.Image) -> str:
    """Its name, its size as uploaded (a JPEG is decoded at a reduced scale) and its colour mode."""
    width, height = image.info.get("full_size", image.size)
    return f"{name} · {width}×{height} {image.info.get('full_mode', image.mode)}"


def show_steps(image: Image.Image, prepared, item_mask, name: str, manual: bool) -> None:
    """The upload with the crop box, the item found (item_mask), the crop and the 28×28, small and left to right."""
    upload, mask, crop, seen = st.columns(4)
    upload.image(preview_with_box(image, prepared.box, STEP * 2), caption=picture_caption(name, image), width=STEP,
                 alt=f"The uploaded picture {name}, with the crop box drawn on it")
    found = "Item found" if item_mask.any() else "No item found"
    if manual:
        found += " (the crop box is yours)"
    mask_image = Image.fromarray((item_mask * 255).astype(np.uint8))
    # At least a pixel high: a picture 1,000 times wider than high would otherwise make an empty one.
    mask_height = max(1, round(STEP * mask_image.height / mask_image.width))
    mask.image(mask_image.resize((STEP, mask_height), Image.NEAREST), caption=found, width=STEP,
               alt=f"{found}: the item in white, its background in black")
    how = "inverted" if prepared.inverted else "not inverted"
    if prepared.turned:  # a photo's symmetric item lying a little turned (fmnist.upright)
        how += f", turned {abs(prepared.turned):.0f}° {'anticlockwise' if prepared.turned > 0 else 'clockwise'} to stand upright"
    crop.image(Image.fromarray(prepared.crop), caption=f"The crop, light on black ({how})", width=STEP, alt=f"The crop ({how})")
    seen.image(enlarge(prepared.pixels, 6), caption=f"What the model sees: {FASHION_MNIST.size_text}", width=STEP, output_format="PNG",
               alt=SEEN_ALT)


def upload_tab(model):
    upload = st.file_uploader("A photo or drawing of one item", type=UPLOAD_TYPES, key="classify_upload",
                              help=f"Any size and colour; the item is found, cropped, centred and shrunk to {FASHION_MNIST.size_text}.")
    if upload is None:
        st.info("Upload a picture of a clothing item: a phone photo of it lying on a floor or bed, a product card, a drawing.",
                icon=":material/upload:")
        return
    try:
        image = open_upload(upload.getvalue())
    except ImageError as e:
        st.error(f"**{upload.name} cannot be used.** {e}", icon=":material/broken_image:")
        return
    reset_corrections(upload)
    steps = st.container()  # above the corrections, filled once they are read
    invert = INVERT_VALUES[st.session_state.get("classify_invert", "auto")]
    problem = None
    try:
        found, problem = prepare_or_whole(image, invert)
    except EmptyImageError as e:
        found, problem = None, str(e)
    st.session_state.classify_found_box = found.box if found else WHOLE
    box = crop_by_hand(expanded=problem is not None)
    prepared = found
    if box is not None:
        try:
            prepared = prepare(image, box, invert)
        except EmptyImageError as e:
            prepared, problem = None, str(e)
    with steps:
        if prepared is None:
            st.image(preview(image, STEP * 2), caption=picture_caption(upload.name, image), width=STEP,
                     alt=f"The uploaded picture {upload.name}")
            st.info(f"No item found. {problem} Set the crop box by hand below, or upload a picture of a clothing item.",
                    icon=":material/search_off:")
            return
        if problem and box is None:
            st.info(f"{problem} Set the crop box by hand below if the item is there.", icon=":material/search_off:")
        show_steps(image, prepared, found.mask if found else prepared.mask, upload.name, manual=box is not None)
    seen, verdict = st.columns([1, 1.4], gap="medium")
    show_prediction(model, prepared, seen, verdict, key="upload", show_seen=False, no_item=problem is not None and box is None)


def test_image_tab(model):
    source, seen, verdict = st.columns([1, 1, 1.4], gap="medium")
    with source:
        label = st.selectbox("Class", range(FASHION_MNIST.num_classes), format_func=FASHION_MNIST.class_names.__getitem__,
                             key="classify_test_class")
        dataset = dataset_or_message()
        if dataset is not None and st.button("Pick a random test image", icon=":material/shuffle:", key="classify_pick"):
            # seed=None: a fresh pick on every press.
            st.session_state.classify_test_index = int(examples_per_class(dataset.y_test, 1, seed=None)[label][0])
    index = st.session_state.get("classify_test_index")
    if dataset is None or index is None:
        seen.info(f"Pick a class and press the button: one of the {FASHION_MNIST.test_size:,} test images, which no model trained on.",
                  icon=":material/shuffle:")
        return
    original = dataset.x_test[index]
    source.image(enlarge(original), caption=f"Test image #{index}", width=SHOWN, output_format="PNG",
                 alt=f"Test image #{index}, a {dataset.info.class_names[dataset.y_test[index]]}")
    show_prediction(model, as_dataset_image(original), seen, verdict, key="test", true_label=int(dataset.y_test[index]))


enter_through_navigation()
st.title("Classify")
st.caption("Draw or upload a clothing item and see what the model sees and predicts.")
runs = [run for run in training_runs(get_store().list_runs()) if run.test_acc is not None]
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

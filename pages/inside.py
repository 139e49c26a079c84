"""Inside: one image through every layer of a trained run, what its first layer's weights learnt,
which pixels drove its prediction, and where the 10,000 test images land in 2-D."""

import numpy as np
import streamlit as st

from fmnist import services
from fmnist.app.activity import run_choice
from fmnist.app.caches import dataset_or_stop, get_store, load_run_inside, run_pca, run_probabilities
from fmnist.app.navigation import INSIDE_REQUEST, enter_through_navigation, no_runs_yet
from fmnist.app.queue_view import follow_run
from fmnist.app.session import acting
from fmnist.charts import probability_bars
from fmnist.data import examples_per_class
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import percent
from fmnist.imaging import enlarge
from fmnist.inside_charts import InsideError, feature_maps, projection_scatter, saliency_overlay, unit_strip, weight_grid
from fmnist.leaderboard import best_run, training_runs
from fmnist.models import stack_name
from fmnist.projection import (
    METHODS,
    PCA,
    TSNE,
    latest_projection,
    model_version,
    pixels_pca,
    pixels_projection_path,
    read_projection,
    run_projection_path,
)
from fmnist.runs import ModelFileError, RunStatus

IMAGE, WEIGHTS, PROJECTION = "image", "weights", "projection"
VIEWS = {IMAGE: ":material/route: One image through the network", WEIGHTS: ":material/grid_view: What the weights learnt",
         PROJECTION: ":material/scatter_plot: Where the test images land"}
TEST, CLASSIFY = "test", "classify"
PREDICTED = -1  # what the saliency map explains by default: the predicted class
SHOWN = 220  # px: the image and its saliency map side by side
NO_TOOLBAR = {"displayModeBar": False}


def describe(run) -> str:
    if run.active:
        return f"{run_choice(run)} · {run.status}"
    return f"{run_choice(run)} · test accuracy {run.test_acc:.4f}"


def show_test_image(index: int, labels) -> None:
    st.session_state.inside_index = index
    st.session_state.inside_class = int(labels[index])
    st.session_state.inside_source = TEST


def take_request(runs: dict, labels) -> None:
    """Another page (Evaluate, Classify) asked to open an image here: set this page's widgets before they are drawn."""
    request = st.session_state.pop(INSIDE_REQUEST, None)
    if not request:
        return
    if request.get("run") in runs:
        st.session_state.inside_run = request["run"]
    if "index" in request:
        show_test_image(int(request["index"]), labels)
    elif request.get("classify"):
        st.session_state.inside_source = CLASSIFY
    st.session_state.inside_view = IMAGE


def open_clicked(key: str, labels) -> None:
    """A click on a projection opens that test image in the first view."""
    points = st.session_state[key].selection.points
    if not points:
        return
    index = points[0].get("customdata")
    index = index[0] if isinstance(index, list) else index
    if index is None:
        return
    show_test_image(int(index), labels)
    st.session_state.inside_view = IMAGE
    st.session_state.inside_chart_version = st.session_state.get("inside_chart_version", 0) + 1  # a fresh chart, no selection left on it


def pick_random(dataset) -> None:
    # seed=None: a fresh pick on every press.
    st.session_state.inside_index = int(examples_per_class(dataset.y_test, 1, seed=None)[st.session_state.inside_class][0])
    st.session_state.inside_source = TEST


def model_or_message(run):
    """The run opened up, or None after saying why it cannot be."""
    if run.active:
        st.info(f"**Run #{run.id} is still training** (epoch {max(run.epoch, 1)} of {run.spec.epochs}). Its model is saved "
                "when training ends, and this page opens it up then; until then, pick a finished run.", icon=":material/hourglass_top:")
        return None
    try:
        return load_run_inside(run.id)
    except ModelFileError as e:
        st.error(f"**The model of run #{run.id} cannot be opened.** {e} Pick another run, or train this one again on Build & Train.",
                 icon=":material/broken_image:")
    except InsideError as e:
        st.error(f"**Run #{run.id}'s model cannot be shown here:** {e}", icon=":material/block:")
    return None


# --- 1. one image through the network (and 3. why this prediction) ---

def chosen_image(dataset) -> tuple[np.ndarray, str, int | None, int | None]:
    """(image in 0-1, its description, its true class or None, its test index or None), from the controls."""
    drawn = st.session_state.get("classify_last")
    sources = [TEST] + ([CLASSIFY] if drawn else [])
    if st.session_state.get("inside_source") not in sources:
        st.session_state.inside_source = TEST
    st.session_state.setdefault("inside_index", 0)
    st.session_state.setdefault("inside_class", int(dataset.y_test[st.session_state.inside_index]))
    if len(sources) > 1:
        st.radio("Image", sources, key="inside_source", horizontal=True,
                 format_func={TEST: "A test image", CLASSIFY: f"Classify's {drawn['what'] if drawn else ''}"}.get)
    if st.session_state.inside_source == CLASSIFY:
        return drawn["image01"], f"Classify's {drawn['what']}", None, None
    pick, number = st.columns([3, 2], vertical_alignment="bottom")
    with pick:
        left, right = st.columns([3, 2], vertical_alignment="bottom")
        left.selectbox("Class", range(FASHION_MNIST.num_classes), format_func=FASHION_MNIST.class_names.__getitem__, key="inside_class")
        right.button("Random image of it", icon=":material/shuffle:", key="pick_inside_random", on_click=pick_random, args=(dataset,))
    number.number_input("Test image #", 0, len(dataset.y_test) - 1, key="inside_index", on_change=lambda: show_test_image(
                            int(st.session_state.inside_index), dataset.y_test),
                        help="Or click a point on *Where the test images land*, or follow an image from Evaluate.")
    index = int(st.session_state.inside_index)
    return dataset.x_test[index] / 255.0, f"Test image #{index}", int(dataset.y_test[index]), index


def image_view(inside, dataset) -> None:
    image01, what, true_class, _ = chosen_image(dataset)
    target = st.session_state.get("inside_target", PREDICTED)
    look = inside.look(image01, None if target == PREDICTED else target)
    predicted = int(np.argmax(look.probs))
    picture, saliency, verdict = st.columns([1, 1, 1.5], gap="medium")
    picture.image(enlarge((image01 * 255).astype(np.uint8)), caption=what, width=SHOWN, output_format="PNG",
                  alt=what + (f", a {FASHION_MNIST.class_names[true_class]}" if true_class is not None
                              else f", {FASHION_MNIST.size_text} grey pixels"))
    with saliency:
        st.plotly_chart(saliency_overlay(image01, look.saliency, height=SHOWN), key="inside_saliency", config=NO_TOOLBAR)
        st.caption(f"Why *{FASHION_MNIST.class_names[look.target]}*: red pixels pushed the model towards it, blue ones away.")
    with verdict:
        with st.container(key="inside_verdict"):
            cols = st.columns(2)
            cols[0].metric("Prediction", FASHION_MNIST.class_names[predicted], f"{percent(float(look.probs[predicted]))} sure",
                           delta_color="off", delta_arrow="off")
            if true_class is not None:
                cols[1].metric("True class", FASHION_MNIST.class_names[true_class])
        st.plotly_chart(probability_bars(look.probs), key="inside_probs", config=NO_TOOLBAR)
    st.selectbox("Explain", [PREDICTED, *range(FASHION_MNIST.num_classes)], key="inside_target",
                 format_func=lambda c: "the predicted class" if c == PREDICTED else FASHION_MNIST.class_names[c],
                 help="Which class the saliency map explains.")
    st.caption("The saliency map is integrated gradients: the gradient of the class' probability with respect to each "
               "pixel, averaged along the way from a black image to this one, times the pixel. The values add up to about "
               "the class' probability minus a black image's, and a black pixel counts for nothing.")

    st.subheader("Layer by layer")
    in_order = st.toggle("Dense units in the layer's order (off: the most active first)", key="inside_in_order")
    for output in look.outputs:
        shape = "×".join(str(n) for n in output.values.shape)
        what = (f"{output.values.shape[-1]} maps of {output.values.shape[0]}×{output.values.shape[1]}" if output.is_maps
                else f"{output.values.shape[0]} units")
        st.markdown(f"**{output.name}** · {output.type} · {what} (output {shape})")
        figure = feature_maps(output) if output.is_maps else unit_strip(output, in_order)
        st.plotly_chart(figure, key=f"inside_layer_{output.name}", config=NO_TOOLBAR)
    st.markdown(f"**output** · Dense, softmax · the ten probabilities above: **{FASHION_MNIST.class_names[predicted]}**")
    skipped(look.skipped)


def skipped(layers) -> None:
    unknown = [layer for layer in layers if "does not know" in layer.why]
    if unknown:
        st.warning("Not shown, because this page does not know how to draw them: "
                   + ", ".join(f"**{layer.name}** ({layer.type})" for layer in unknown)
                   + ". The model still runs through them; the layers before and after are shown.", icon=":material/help:")
    known = [layer for layer in layers if layer not in unknown]
    if known:
        st.caption("Not drawn: " + "; ".join(f"{layer.name} ({layer.type}: {layer.why})" for layer in known) + ".")


# --- 2. what the weights learnt ---

def weights_view(inside) -> None:
    weights = inside.weights
    if weights is None:
        st.info(f"This model's first layer with weights is neither a dense layer on the {FASHION_MNIST.size_text} pixels nor a convolution, "
                "so there is no picture of what it learnt.", icon=":material/info:")
        return
    n = len(weights.images)
    if weights.kind == "units":
        count = st.select_slider("Units shown", sorted({min(n, c) for c in (16, 32, 64, 128, 256, n)}), value=min(n, 64), key="inside_count")
        st.markdown(f"**{weights.layer}**: each square is one of its {n} units, the weight it gives each of the 784 pixels, "
                    "the units with the largest weights (L2 norm) first. Red: a bright pixel there raises the unit's output; "
                    "blue: it lowers it. Each square has its own scale; hover for the real weight.")
        st.plotly_chart(weight_grid(weights, count), key="inside_weights", config=NO_TOOLBAR)
        st.caption("What to look for: silhouettes of clothing (a trouser's two legs, a sneaker's sole, a bag's handle), a shape "
                   "in red with its outline in blue (the unit tells one class from a similar one), and squares of noise far down "
                   "the list: units that learnt little. A model trained longer shows smoother, more garment-like squares.")
    else:
        side = weights.images.shape[1]
        st.markdown(f"**{weights.layer}**: its {n} filters, {side}×{side} weights each, slid over the image; the largest "
                    "(L2 norm) first. Red weights respond to light pixels, blue ones to dark pixels; hover for each weight.")
        st.plotly_chart(weight_grid(weights, n), key="inside_weights", config=NO_TOOLBAR)
        st.caption("What to look for: edge detectors (red on one side, blue on the other, in some direction), spot or blob "
                   "detectors (one sign in the middle, the other around it), and nearly flat filters that respond to "
                   "brightness alone. See what they make of an image in the first view's first layer.")


# --- 4. where the test images land ---

@st.cache_resource(max_entries=16, show_spinner=False)
def scatter(key: tuple, _points, _labels, _predicted, title: str, chosen: int):
    """Built once per projection, predictions and chosen image (`key` names them): building ten thousand
    points' figure is most of a rerun's time otherwise. Streamlit only reads the figure it is given."""
    return projection_scatter(_points, _labels, _predicted, title, chosen)


def start_tsne(store, run) -> bool:
    """Queue the run's t-SNE (fmnist.services.start_projection); False after saying why it may not be."""
    try:
        services.start_projection(store, acting(), run.id)
    except services.REFUSED as e:
        st.info(f"**The t-SNE of run #{run.id} has not been computed yet.** {e}", icon=":material/hourglass_disabled:")
        return False
    return True


ENDED = {RunStatus.FAILED: "failed", RunStatus.INTERRUPTED: "was interrupted", RunStatus.STOPPED: "was stopped",
         RunStatus.CANCELLED: "was cancelled before it started",
         RunStatus.FINISHED: "was computed, but its files are gone or of another version of its model"}


def tsne_or_progress(run, dataset):
    """The run's and the pixels' t-SNE (either None until the run's projection run has made it). The
    projection is a run in the queue (fmnist.jobs.projection): choosing t-SNE queues one for a run that
    never had one; while it is queued or computed its progress shows here, with a Stop; one that ended
    without making it says how, and offers to compute it again."""
    store = get_store()
    n = len(dataset.y_test)
    found = read_projection(run_projection_path(store, run.id, TSNE), n, model_version(store, run.id))
    pixels = read_projection(pixels_projection_path(store, TSNE), n)
    if found is not None and pixels is not None:
        return found, pixels
    projection = latest_projection(store, run.id)
    if projection is None:  # never asked for here (a store from before projections were runs reads its files above)
        if not start_tsne(store, run):
            return found, pixels
        projection = latest_projection(store, run.id)
    if projection.active:
        follow_run(projection.id, f"Run #{run.id}'s t-SNE", "inside_stop")
        st.caption("It is computed in the background, in the queue like a training: other views and pages stay usable, "
                   "and it is kept with the run.")
        return found, pixels
    why = f": {projection.error}" if projection.error else "."
    failed = projection.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
    (st.error if failed else st.info)(f"**The t-SNE of run #{run.id} {ENDED.get(projection.status, projection.status)}**{why}",
                                      icon=":material/error:" if failed else ":material/info:")
    if st.button("Try again" if failed else "Compute it", key="inside_retry", icon=":material/refresh:") and start_tsne(store, run):
        st.rerun()
    return found, pixels


def projection_view(run, dataset) -> None:
    method = st.segmented_control("Method", list(METHODS), format_func=METHODS.get, key="inside_method", required=True,
                                  default=PCA, help="PCA: a linear projection, at once. t-SNE: keeps neighbours together; "
                                  "computed once per run in the background (a run in the queue), and kept with the run.")
    try:
        probs = run_probabilities(run.id, dataset)
        if method == PCA:
            with st.spinner(f"The last hidden layer's outputs for the {FASHION_MNIST.test_size:,} test images…"):
                found, pixels = run_pca(run.id, dataset), pixels_pca(get_store(), dataset.x_test)
        else:
            found, pixels = tsne_or_progress(run, dataset)
    except ModelFileError as e:
        st.error(f"**The model of run #{run.id} cannot be opened.** {e}", icon=":material/broken_image:")
        return
    except InsideError as e:
        st.error(f"**Run #{run.id}'s model cannot be projected:** {e}", icon=":material/block:")
        return
    predicted = np.argmax(probs, axis=1)
    chosen = int(st.session_state.get("inside_index", 0))
    version = st.session_state.get("inside_chart_version", 0)
    network, raw = st.columns(2, gap="medium")
    store = get_store()
    for column, projection, title, key in (
        (network, found, f"Run #{run.id}'s last hidden layer" + (f" ({found.meta.get('layer')})" if found else ""), "inside_net"),
        (raw, pixels, "The raw pixels (784 values)", "inside_pixels"),
    ):
        with column:
            if projection is None:
                st.caption(f"{title}: being computed…")
                continue
            figure = scatter((str(store.home), run.id, key, method, model_version(store, run.id), chosen), projection.points,
                             dataset.y_test, predicted, f"{title}: {METHODS[method]}", chosen)
            key = f"{key}_{method}_{version}"
            st.plotly_chart(figure, key=key, on_select=lambda key=key: open_clicked(key, dataset.y_test), selection_mode="points", config=NO_TOOLBAR)
    mistakes = int((predicted != dataset.y_test).sum())
    st.caption(f"Each point is one of the {len(predicted):,} test images, coloured by its true class; × marks the "
               f"{mistakes:,} the model gets wrong; the star is the image in the first view. Left, what the network made of "
               "them; right, the same images as raw pixels, for comparison: how far apart the classes lie on the left is "
               "what the network untangled. Hover for an image's class and prediction; click a point to follow it through the network.")


enter_through_navigation()
st.title("Inside")
st.caption("Follow one image through every layer, see what the first layer's weights learnt and which pixels drove a "
           f"prediction, and where the {FASHION_MNIST.test_size:,} test images land.")
store = get_store()
runs = [run for run in training_runs(store.list_runs()) if run.test_acc is not None or run.active]
scored = [run for run in runs if run.test_acc is not None]
if not runs:
    no_runs_yet("There is no trained model yet. Train one on Build & Train, then open it up here.")
    st.stop()
dataset = dataset_or_stop()
by_id = {run.id: run for run in sorted(runs, key=lambda r: (r.test_acc is None, -(r.test_acc or 0)))}
take_request(by_id, dataset.y_test)
best = best_run(scored) if scored else next(iter(by_id.values()))
if st.session_state.get("inside_run") not in by_id:  # first visit, or its run was deleted meanwhile
    st.session_state.inside_run = best.id
run_id = st.selectbox("Run", list(by_id), format_func=lambda r: describe(by_id[r]), key="inside_run",
                      help="Every trained run; the best test accuracy is picked at first.")
run = by_id[run_id]
inside = model_or_message(run)
if inside is None:
    st.stop()
st.session_state.setdefault("inside_view", IMAGE)
view = st.segmented_control("View", list(VIEWS), format_func=VIEWS.get, key="inside_view", required=True, label_visibility="collapsed")
st.caption(f"{stack_name(run.spec)} · {run.params:,} parameters")
if view == IMAGE:
    image_view(inside, dataset)
elif view == WEIGHTS:
    weights_view(inside)
else:
    projection_view(run, dataset)

"""Build & Train: shape a dense stack with sliders, then watch it learn live."""

import pandas as pd
import streamlit as st

from fmnist.charts import curve_data, curve_spec, stack_diagram
from fmnist.models import (
    ACTIVATIONS, KERNEL_SIZES, LR_SCHEDULES, MAX_CONV_BLOCKS, MAX_LAYERS, PRESET_EXPECTED, PRESETS, WIDTH_RANGE,
    ConvBlock, DenseLayer, ModelSpec, SpecError, count_params, cpu_has_bfloat16, summary_rows, validate,
)
from fmnist.store import run_to_watch
from fmnist.ui import (
    LEADERBOARD_PAGE, SIDEBAR_QUIET, activity, dataset_or_message, enter_through_navigation, get_store, open_store,
    page_drawn_for, run_label,
)
from fmnist.worker import launch

DEFAULT_PRESET = "Seed D: 128-64"
BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [0.0001, 0.0003, 0.001, 0.002, 0.003, 0.01]
TRAIN_SIZES = [1000, 2000, 5000, 10000, 20000, 30000, 60000]
FILTER_CHOICES = [8, 16, 32, 64, 128]
LIVE_EVERY_S = 1.0  # the live curves refresh at least once a second while a run trains
METRICS = ("loss", "accuracy")


def apply_preset():
    """Fill every control from the chosen preset (a Streamlit on_change callback)."""
    name = st.session_state.build_preset
    if name not in PRESETS:
        return
    spec = PRESETS[name]
    first = spec.layers[0]
    state = st.session_state
    state.build_layers = len(spec.layers)
    for i, layer in enumerate(spec.layers):
        state[f"build_width_{i}"] = layer.units
    state.build_per_layer = False
    state.build_activation, state.build_dropout, state.build_batch_norm = first.activation, first.dropout, first.batch_norm
    state.build_conv_blocks = len(spec.conv)
    for i, block in enumerate(spec.conv):
        state[f"build_filters_{i}"], state[f"build_kernel_{i}"] = block.filters, block.kernel_size
        state[f"build_pool_{i}"], state[f"build_conv_norm_{i}"], state[f"build_conv_dropout_{i}"] = block.pool, block.batch_norm, block.dropout
    state.build_epochs, state.build_batch_size, state.build_lr = spec.epochs, spec.batch_size, spec.learning_rate
    state.build_val_split, state.build_lr_schedule, state.build_augment = spec.val_split, spec.lr_schedule, spec.augment
    state.build_mixed_precision = spec.mixed_precision


def preset_label(name: str) -> str:
    expected = PRESET_EXPECTED.get(name)
    return f"{name} · {expected}" if expected else name


SETTING_DEFAULTS = {
    "build_epochs": 10, "build_batch_size": 32, "build_lr": 0.001, "build_val_split": 0.1, "build_seed": 0,
    "build_limit": 60000, "build_early_stopping": False, "build_patience": 3, "build_checkpoint": False,
    "build_lr_schedule": "constant", "build_augment": False, "build_mixed_precision": False,
}


def init_state():
    """Defaults live in session state, not in the widgets, so that a value kept from
    an earlier visit (see keep_widget_state) never clashes with a widget default."""
    if "build_layers" not in st.session_state:
        st.session_state.build_preset = DEFAULT_PRESET
        apply_preset()
    for key, value in SETTING_DEFAULTS.items():
        st.session_state.setdefault(key, value)


def layer_controls() -> list[DenseLayer]:
    st.slider("Hidden layers", 1, MAX_LAYERS, key="build_layers")
    per_layer = st.toggle("Activation, dropout and batch-norm per layer", key="build_per_layer")
    if not per_layer:
        cols = st.columns(3)
        activation = cols[0].selectbox("Activation", ACTIVATIONS, key="build_activation")
        dropout = cols[1].slider("Dropout", 0.0, 0.5, step=0.05, key="build_dropout")
        batch_norm = cols[2].checkbox("Batch-norm", key="build_batch_norm")
    layers = []
    for i in range(st.session_state.build_layers):
        st.session_state.setdefault(f"build_width_{i}", 64)
        if per_layer:
            cols = st.columns([3, 2, 2, 1.3], vertical_alignment="bottom")
            units = cols[0].slider(f"Layer {i + 1} width", *WIDTH_RANGE, key=f"build_width_{i}")
            activation = cols[1].selectbox("Activation", ACTIVATIONS, key=f"build_activation_{i}")
            dropout = cols[2].slider("Dropout", 0.0, 0.5, step=0.05, key=f"build_dropout_{i}")
            batch_norm = cols[3].checkbox("BN", key=f"build_batch_norm_{i}", help="batch normalisation")
        else:
            units = st.slider(f"Layer {i + 1} width", *WIDTH_RANGE, key=f"build_width_{i}")
        layers.append(DenseLayer(units, activation, dropout, batch_norm))
    return layers


def conv_controls(activation: str) -> list[ConvBlock]:
    st.slider("Convolutional blocks", 0, MAX_CONV_BLOCKS, key="build_conv_blocks",
              help="Filters that look at small patches of the image before the dense layers: they see edges and shapes, not single pixels.")
    blocks = []
    for i in range(st.session_state.build_conv_blocks):
        for key, value in ((f"build_filters_{i}", 32), (f"build_kernel_{i}", 3), (f"build_pool_{i}", True)):
            st.session_state.setdefault(key, value)
        block = st.container(border=True)
        cols = block.columns([3, 2], vertical_alignment="bottom")
        filters = cols[0].select_slider(f"Block {i + 1} filters", FILTER_CHOICES, key=f"build_filters_{i}")
        kernel = cols[1].selectbox("Kernel", KERNEL_SIZES, key=f"build_kernel_{i}", format_func=lambda k: f"{k}×{k}")
        cols = block.columns([1, 1.3, 2], vertical_alignment="center")
        pool = cols[0].checkbox("Pool", key=f"build_pool_{i}", help="2×2 max-pooling: halves the image's height and width")
        batch_norm = cols[1].checkbox("Batch-norm", key=f"build_conv_norm_{i}")
        dropout = cols[2].slider("Dropout", 0.0, 0.5, step=0.05, key=f"build_conv_dropout_{i}")
        blocks.append(ConvBlock(filters, kernel, activation, pool, dropout, batch_norm))
    return blocks


def training_controls() -> dict:
    cols = st.columns(2)
    settings = {
        "epochs": cols[0].slider("Epochs", 1, 50, key="build_epochs"),
        "batch_size": cols[1].select_slider("Batch size", BATCH_SIZES, key="build_batch_size"),
        "learning_rate": cols[0].select_slider("Learning rate (Adam)", LEARNING_RATES, key="build_lr"),
        "val_split": cols[1].slider("Validation split", 0.0, 0.3, step=0.05, key="build_val_split"),
        "seed": cols[0].number_input("Seed", 0, 2**31 - 1, key="build_seed"),
        "lr_schedule": cols[0].selectbox("Learning-rate schedule", LR_SCHEDULES, key="build_lr_schedule",
                                         help="cosine: decays to zero over the run; plateau: halves when validation loss stalls for 2 epochs"),
    }
    limit = cols[1].select_slider(
        "Training images", TRAIN_SIZES, key="build_limit",
        help="Train on the first N of the 60,000 images: fewer is faster, for a quick try.",
    )
    cols = st.columns(2, vertical_alignment="center")
    settings["early_stopping"] = cols[0].checkbox("Early stopping", key="build_early_stopping", help="stop when validation loss stops improving and keep the best weights")
    settings["patience"] = cols[1].number_input("Patience (epochs)", 1, 20, key="build_patience", disabled=not settings["early_stopping"])
    settings["augment"] = st.checkbox("Augment: random shifts and left-right flips", key="build_augment",
                                      help="each epoch sees slightly different images: less overfitting, slower to learn")
    settings["mixed_precision"] = st.checkbox(
        "Mixed precision (bfloat16)", key="build_mixed_precision",
        help="computes in 16-bit floats and keeps the weights in 32-bit: about twice as fast for convolutions "
             "on a CPU with bfloat16 instructions, at about the same accuracy")
    if settings["mixed_precision"] and cpu_has_bfloat16() is False:
        st.warning("This CPU has no bfloat16 instructions: mixed precision will train slower, not faster.", icon=":material/warning:")
    settings["checkpoint"] = st.checkbox("Use the best epoch's weights (checkpoint)", key="build_checkpoint", help="saves the weights of the epoch with the best validation loss and evaluates those")
    return settings, (None if limit == 60000 else limit)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def start_run(spec: ModelSpec, name: str, limit: int | None):
    store = get_store()
    if dataset_or_message() is None:
        return
    run_id = launch(store, spec, name=name or None, train_limit=limit)
    st.session_state.watch_run = run_id
    ahead = [r for r in store.list_runs(statuses=("queued", "running")) if r.id < run_id]
    if ahead:
        st.info(f"Run #{run_id} is queued behind {', '.join(f'#{r.id}' for r in ahead)}: it starts when the machine is free.", icon=":material/schedule:")
    else:
        st.toast(f"Run #{run_id} started", icon=":material/rocket_launch:")


def show_progress(run):
    steps = run.steps_per_epoch or 0
    text = (f"Epoch {max(run.epoch, 1)}/{run.total_epochs} · batch {run.step}/{steps} · "
            f"{(run.samples_per_s or 0):,.0f} samples/s · ETA {format_duration(run.eta_s())}")
    st.progress(run.fraction_done(), text=text)


def show_result(run, store):
    if run.status in ("failed", "interrupted"):
        st.error(f"Run #{run.id} {run.status}: {run.error}", icon=":material/error:")
    if run.scores:
        label = "Fold accuracies" if run.kind == "cv" else "Test accuracy per seed"
        mean, std = (run.cv_mean, run.cv_std) if run.kind == "cv" else (run.seeds_mean, run.seeds_std)
        st.markdown(f"{label} ({len(run.scores)}/{run.repeats}): " + ", ".join(f"{s:.4f}" for s in run.scores)
                    + f" → **{mean:.4f} ± {std:.4f}**")
    if run.test_acc is not None:
        cols = st.columns(3)
        cols[0].metric("Test accuracy", f"{run.test_acc:.4f}")
        cols[1].metric("Test loss", f"{run.test_loss:.4f}")
        cols[2].metric("Training time", format_duration(run.train_s))
        st.page_link(LEADERBOARD_PAGE, label=f"See run #{run.id} on the Leaderboard", icon=":material/leaderboard:")
        st.caption("Open its TensorBoard logs:")
        st.code(f"python3 -m tensorboard.main --logdir {store.run_dir(run.id) / 'tensorboard'}", language="bash")


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_diagram(spec: ModelSpec):
    """The network's picture, built once per spec (plotly's figure building is most of a slider
    move otherwise): moving a slider back and forth, or a rerun that changed nothing in the stack,
    costs nothing. Shared read-only by all sessions."""
    return stack_diagram(spec)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_summary(spec: ModelSpec) -> pd.DataFrame:
    return pd.DataFrame(summary_rows(spec))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_curves(home: str, run_id: int, points: tuple[int, int], steps_per_epoch: int | None) -> tuple[list, dict]:
    """A run's epoch rows and its curves' data per metric, read again only when the run has new
    points (`points`: its epoch and batch row counts), and once for all the tabs that watch it."""
    store = open_store(home)
    epochs, batches = store.epochs(run_id), store.batches(run_id)
    return epochs, {metric: curve_data(epochs, batches, steps_per_epoch, metric) for metric in METRICS}


def live_panel():
    """The watched run's progress and curves. They refresh every LIVE_EVERY_S while a run is queued
    or training, and not at all otherwise: each page run decides (a page run clears the browser's
    refresh timers, and a fragment drawn without run_every sets none), so a run that has ended
    costs nothing to look at. When runs start or end the page runs again (ui.activity_changed):
    from the panel's own refresh while it refreshes, from the sidebar's while it stands still."""
    runs = get_store().list_runs()
    live = any(run.active for run in runs)  # then the watched run is one of them (run_to_watch)
    page_drawn_for(runs)
    if not live and st.session_state.pop(SIDEBAR_QUIET, False):
        st.rerun()  # the runs ended after the sidebar saw them: a page run again, with the sidebar refreshing
    st.fragment(live_view, run_every=LIVE_EVERY_S if live else None)(activity(runs))


def live_view(drawn_for: tuple):
    """`drawn_for`: the active runs when the page drew the panel (a fragment's refreshes keep its arguments)."""
    store = get_store()
    runs = store.list_runs()
    if activity(runs) != drawn_for:
        st.rerun()  # a run started or ended: the page draws itself again, the panel with it
    run = run_to_watch(runs, st.session_state.get("watch_run"))
    if run is None:
        st.info("No runs yet: shape a stack above and press **Start training**.", icon=":material/info:")
        return
    head, button = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"#### {run_label(run)} · {run.status}")
    if run.active and button.button("Stop", key="stop_run", icon=":material/stop_circle:", help="ends at the next batch and keeps what it learnt"):
        store.request_stop(run.id)
        st.toast(f"Stopping run #{run.id}…")
    if run.status == "queued":
        st.info(f"Queued: {store.queue_position(run.id)} in line. It starts when the run before it ends.", icon=":material/schedule:")
    elif run.status == "running":
        show_progress(run)
    epochs, data = cached_curves(str(store.home), run.id, store.point_counts(run.id), run.steps_per_epoch)
    for column, metric in zip(st.columns(2), METRICS):
        column.container(key=f"live_{metric}").vega_lite_chart(data[metric], curve_spec(metric, epochs, run.total_epochs), width="stretch")
    show_result(run, store)


enter_through_navigation()
st.title("Build & Train")
init_state()
build, picture = st.columns([1, 1.2], gap="large")
with build:
    st.selectbox("Preset", ["Custom"] + list(PRESETS), key="build_preset", on_change=apply_preset, format_func=preset_label)
    conv = conv_controls(st.session_state.get("build_activation", "relu"))
    layers = layer_controls()
    with st.expander("Training settings", expanded=True):
        settings, limit = training_controls()

spec, error = None, None
try:
    spec = validate(ModelSpec(layers=tuple(layers), conv=tuple(conv), **settings))
except SpecError as e:
    error = str(e)

with picture:
    if spec is None:
        st.error(f"This stack cannot be built: {error}")
    else:
        st.metric("Parameters", f"{count_params(spec):,}")
        st.plotly_chart(cached_diagram(spec), key="stack_diagram", config={"displayModeBar": False})
        st.dataframe(cached_summary(spec), hide_index=True, width="stretch")
    name = st.text_input("Run name (optional)", key="build_run_name", placeholder="e.g. wide with dropout")
    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=spec is None, key="start"):
        start_run(spec, name, limit)

st.divider()
live_panel()

"""Build & Train: shape a dense stack with sliders, then watch it learn live."""

from dataclasses import replace

import pandas as pd
import streamlit as st

from fmnist import services
from fmnist.access import LOCAL_ADMIN, may_manage
from fmnist.accessibility import live_announcement
from fmnist.app import queue_view
from fmnist.app.activity import SIDEBAR_QUIET, active_runs, activity, page_drawn_for, run_label
from fmnist.app.caches import cached_store, dataset_or_message, get_store, store_errors_shown
from fmnist.app.coaching import coach_findings
from fmnist.app.navigation import LEADERBOARD_PAGE, SEARCH_PAGE, enter_through_navigation
from fmnist.app.session import acting, current_person
from fmnist.app.stack_links import SETTING_WIDGETS, keep_in_link, open_link
from fmnist.app.take_home import code_downloads
from fmnist.backends import (
    PRECISION_SETTINGS,
    SETTINGS,
    bfloat16_slower_here,
    default_setting,
    engine_label,
    precision_label,
    setting_label,
)
from fmnist.charts import curves_summary, live_curves, stack_diagram
from fmnist.estimates import speeds_here, time_here
from fmnist.live_chart import live_chart, live_chart_data
from fmnist.models import (
    ACTIVATIONS,
    KERNEL_SIZES,
    LR_SCHEDULES,
    MAX_CONV_BLOCKS,
    MAX_LAYERS,
    PRESET_EXPECTED,
    PRESETS,
    WIDTH_RANGE,
    ConvBlock,
    DenseLayer,
    ModelSpec,
    SpecError,
    count_params,
    summary_rows,
    validate,
)
from fmnist.names import MAX_RUN_NAME
from fmnist.runs import Run, RunKind, RunStatus
from fmnist.stack_link import ALL_IMAGES, BATCH_SIZES, FILTER_CHOICES, LEARNING_RATES, TRAIN_SIZES
from fmnist.tab_visibility import tab_hidden, watch_tab_visibility
from fmnist.text import shown

DEFAULT_PRESET = "Seed D: 128-64"
LIVE_EVERY_S = 1.0  # the live curves refresh at least once a second while a run trains
LIVE_VISIBILITY = "live_visibility"  # the live panel's tab_visibility component (fmnist.tab_visibility)


# What a person chose for these stays when they pick another preset.
KEPT_ACROSS_PRESETS = ("seed", "early_stopping", "patience", "checkpoint")

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
    for field, key in SETTING_WIDGETS.items():
        if field not in KEPT_ACROSS_PRESETS:
            state[key] = getattr(spec, field)


def preset_label(name: str, times: dict[str, str]) -> str:
    """'Best MLP · 0.899 test accuracy · 1 min 25 s here (median of 3 runs)'."""
    return " · ".join(part for part in (name, PRESET_EXPECTED.get(name), times.get(name)) if part)


def init_state():
    """Defaults live in session state, not in the widgets, so that a value kept from
    an earlier visit (see keep_widget_state) never clashes with a widget default.
    They are the spec's own defaults."""
    if "build_layers" not in st.session_state:
        st.session_state.build_preset = DEFAULT_PRESET
        apply_preset()
    defaults = ModelSpec(layers=())
    for field, key in SETTING_WIDGETS.items():
        st.session_state.setdefault(key, getattr(defaults, field))
    st.session_state.setdefault("build_limit", ALL_IMAGES)
    if "build_backend" not in st.session_state:
        try:
            st.session_state.build_backend = default_setting()
        except ValueError as e:  # a bad FMNIST_BACKEND: said once, and the page starts from auto
            st.session_state.build_backend = "auto"
            st.session_state.backend_problem = str(e)


def backend_control(spec: ModelSpec | None) -> str:
    """The Keras backend that will train the run; auto picks the fastest for the stack on screen."""
    if problem := st.session_state.pop("backend_problem", None):
        st.warning(f"{problem}: runs start on auto until you choose.", icon=":material/warning:")
    return st.selectbox("Engine (Keras backend)", SETTINGS, key="build_backend", format_func=lambda s: setting_label(s, spec),
                        help="auto: JAX for dense stacks, TensorFlow with conv blocks or augmentation (faster on a CPU)")


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


def training_controls(conv: list[ConvBlock]) -> dict:
    caps = queue_view.caps_here()  # a teacher's caps: the sliders offer no more (clamp_to_caps)
    cols = st.columns(2)
    settings = {
        "epochs": cols[0].slider("Epochs", 1, queue_view.most_epochs(caps, 50), key="build_epochs"),
        "batch_size": cols[1].select_slider("Batch size", BATCH_SIZES, key="build_batch_size"),
        "learning_rate": cols[0].select_slider("Learning rate (Adam)", LEARNING_RATES, key="build_lr"),
        "val_split": cols[1].slider("Validation split", 0.0, 0.3, step=0.05, key="build_val_split"),
        "seed": cols[0].number_input("Seed", 0, 2**31 - 1, key="build_seed"),
        "lr_schedule": cols[0].selectbox("Learning-rate schedule", LR_SCHEDULES, key="build_lr_schedule",
                                         help="cosine: decays to zero over the run; plateau: halves when validation loss stalls for 2 epochs"),
    }
    limit = cols[1].select_slider(
        "Training images", queue_view.image_choices(caps, TRAIN_SIZES), key="build_limit",
        help=f"Train on the first N of the {ALL_IMAGES:,} images: fewer is faster, for a quick try.",
    )
    queue_view.caps_caption(caps)
    cols = st.columns(2, vertical_alignment="center")
    settings["early_stopping"] = cols[0].checkbox("Early stopping", key="build_early_stopping",
                                                  help="stop when validation loss stops improving and keep the best weights")
    settings["patience"] = cols[1].number_input("Patience (epochs)", 1, 20, key="build_patience", disabled=not settings["early_stopping"])
    settings["augment"] = st.checkbox("Augment: random shifts and left-right flips", key="build_augment",
                                      help="each epoch sees slightly different images: less overfitting, slower to learn")
    stack = ModelSpec(layers=(), conv=tuple(conv))  # what auto's choice depends on
    settings["mixed_precision"] = st.selectbox(
        "Precision", PRECISION_SETTINGS, key="build_mixed_precision", format_func=lambda s: precision_label(s, stack),
        help="bfloat16 computes in 16-bit floats and keeps the weights in 32-bit, at about the same accuracy: about twice "
             "as fast for convolutions on a CPU with bfloat16 instructions (AMX, AVX512-BF16), several times slower on one "
             "without. auto: bfloat16 on a GPU, and for conv blocks on a CPU with them; float32 elsewhere")
    if bfloat16_slower_here(replace(stack, mixed_precision=settings["mixed_precision"])):
        st.warning("This CPU has no bfloat16 instructions: bfloat16 trains slower here than float32, not faster "
                   "(auto picks float32 on this machine).", icon=":material/warning:")
    settings["checkpoint"] = st.checkbox("Use the best epoch's weights (checkpoint)", key="build_checkpoint",
                                         help="saves the weights of the epoch with the best validation loss and evaluates those")
    return settings, (None if limit == ALL_IMAGES else limit)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def start_run(spec: ModelSpec, name: str, limit: int | None, backend_setting: str):
    store = get_store()
    if dataset_or_message() is None:
        return
    try:
        run_id = services.start_training(store, acting(), spec, name=name or None, train_limit=limit, backend_setting=backend_setting)
    except services.REFUSED as e:
        st.error(str(e), icon=":material/block:")
        return
    st.session_state.watch_run = run_id
    ahead = [r for r in active_runs(store) if r.id < run_id]
    if store.get(run_id).on_cluster:
        st.toast(f"Run #{run_id} sent to the cluster", icon=":material/rocket_launch:")
    elif ahead:
        st.info(f"Run #{run_id} is queued behind {', '.join(f'#{r.id}' for r in ahead)}: it starts when the machine is free.",
                icon=":material/schedule:")
    else:
        st.toast(f"Run #{run_id} started", icon=":material/rocket_launch:")


def run_to_watch(runs: list[Run], own_run_id: int | None, person_id: str | None = None) -> Run | None:
    """The run this page shows: this session's while it is active, else the person's own
    that trains, else their next queued (a second tab, or a session the server lost, finds
    theirs among a class's), else the one training now (so a second tab sees it live), else
    the next queued, else this session's last run, else the person's newest, else the newest."""
    by_id = {run.id: run for run in runs}
    own = by_id.get(own_run_id)
    if own and own.active:
        return own
    theirs = [run for run in runs if (run.owner or LOCAL_ADMIN.id) == person_id]
    for pool in (theirs, runs):
        for status in (RunStatus.RUNNING, RunStatus.QUEUED):
            active = [run for run in pool if run.status == status]
            if active:
                return active[0]
    return own or (theirs or runs or [None])[-1]


def progress_line(run) -> dict:
    steps = run.steps_per_epoch or 0
    text = (f"Epoch {max(run.epoch, 1)}/{run.total_epochs} · batch {run.step}/{steps} · "
            f"{(run.samples_per_s or 0):,.0f} samples/s · ETA {format_duration(run.eta_s())}")
    return {"fraction": round(run.fraction_done(), 4), "text": text}


def show_result(run, store):
    queue_view.stopped_at_cap_note(run)
    if run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        st.error(f"Run #{run.id} {run.status}: {run.error}", icon=":material/error:")
    if run.kind == RunKind.TRIAL:
        st.page_link(SEARCH_PAGE, label=f"A trial of search #{run.parent_id}: scored on validation accuracy only, never on the test set",
                     icon=":material/travel_explore:")
    if run.scores:
        label = "Fold accuracies" if run.kind == RunKind.CV else "Test accuracy per seed"
        mean, std = (run.cv_mean, run.cv_std) if run.kind == RunKind.CV else (run.seeds_mean, run.seeds_std)
        st.markdown(f"{label} ({len(run.scores)}/{run.repeats}): " + ", ".join(f"{s:.4f}" for s in run.scores)
                    + f" → **{mean:.4f} ± {std:.4f}**")
    if run.test_acc is not None:
        cols = st.columns(3)
        cols[0].metric("Test accuracy", f"{run.test_acc:.4f}")
        cols[1].metric("Test loss", f"{run.test_loss:.4f}")
        cols[2].metric("Training time", format_duration(run.train_s))
        st.caption(curves_summary(run_label(run), store.epochs(run.id), "accuracy"))  # the curves above, in words
        st.page_link(LEADERBOARD_PAGE, label=f"See run #{run.id} on the Leaderboard", icon=":material/leaderboard:")
        st.caption("Open its TensorBoard logs:")
        # Wrapped: a box that scrolls sideways is one more stop a keyboard user must find.
        st.code(f"python3 -m tensorboard.main --logdir {store.run_dir(run.id) / 'tensorboard'}", language="bash", wrap_lines=True)
    code_downloads(store, run, "train")  # the run's code to take home, or why there is none yet
    coach_findings(store, run)


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
def cached_curves(home: str, run_id: int, points: tuple[int, int], steps_per_epoch: int | None, total_epochs: int | None) -> dict:
    """A run's curves' figures, read and built again only when the run has new points (`points`: its
    epoch and batch row counts), and once for all the tabs that watch it."""
    store = cached_store(home)
    return live_chart_data(live_curves(store.epochs(run_id), store.batches(run_id), steps_per_epoch, total_epochs))


@store_errors_shown
def live_panel():
    """The watched run's progress and curves. They refresh every LIVE_EVERY_S while a run is queued
    or training, and not at all otherwise: each page run decides (a page run clears the browser's
    refresh timers, and a fragment drawn without run_every sets none), so a run that has ended
    costs nothing to look at. When runs start or end the page runs again (activity.activity_changed):
    from the panel's own refresh while it refreshes, from the sidebar's while it stands still."""
    store = get_store()
    active_runs(store)  # marks runs whose process died, so none shows 'running' forever
    runs = store.list_runs()
    # Live while any run is active, a search's too (its trials come and go): the rule the
    # sidebar follows (activity.sidebar_status), so that exactly one of the two refreshes.
    live = any(run.active for run in runs)
    page_drawn_for(runs)
    if not live and st.session_state.pop(SIDEBAR_QUIET, False):
        st.rerun()  # the runs ended after the sidebar saw them: a page run again, with the sidebar refreshing
    st.fragment(store_errors_shown(live_view))(activity(runs), live)


def live_view(drawn_for: tuple, live: bool):
    """The run's header, its Stop button and, once it has ended, its results: a fragment of its
    own (Stop reruns only this), which does not refresh; inside it, the part that does (live_curves_view).
    `drawn_for`: the active runs when the page drew the panel."""
    store = get_store()
    active_runs(store)  # marks runs whose process died, so none shows 'running' forever
    runs = store.list_runs()
    if activity(runs) != drawn_for:
        st.rerun()  # a run started or ended: the page draws itself again, the panel with it
    # A search trains nothing itself: its trials are what trains, and they show here like any run. A
    # projection or an export trains nothing either: it shows where it was started (Inside, the Leaderboard).
    runs = [run for run in runs if run.kind != RunKind.SEARCH and not run.derived]
    person = current_person()
    run = run_to_watch(runs, st.session_state.get("watch_run"), person.id if person else None)
    if run is None:
        st.info("No runs yet: shape a stack above and press **Start training**.", icon=":material/info:")
        return
    head, button = st.columns([5, 1], vertical_alignment="center")
    engine = engine_label(run)
    head.markdown(f"#### {run_label(run)} · {run.status}" + (f" · {engine}" if engine else ""))
    if run.device:
        head.caption(f"Trains on {engine} · {run.device}")
    if person is None:  # this panel reruns on its own, past the app's sign-in: say it here
        st.error("You are signed out (here or in another tab): reload the page to sign in again.", icon=":material/lock:")
        return
    mine = may_manage(person, run)
    stop_help = "ends at the next batch and keeps what it learnt" if mine else f"started by {shown(run.owner_name or LOCAL_ADMIN.name)}"
    if run.active and button.button("Stop", key="stop_run", icon=":material/stop_circle:", disabled=not mine, help=stop_help):
        try:  # checked as it happens, not only as the button was drawn
            services.stop(store, acting(), run.id)
            st.toast(f"Stopping run #{run.id}…")
        except services.REFUSED as e:
            st.error(str(e), icon=":material/lock:")
    if run.status == RunStatus.QUEUED and run.on_cluster:
        st.info("Queued on the cluster: it starts when Ray has room for it.", icon=":material/schedule:")
    elif run.status == RunStatus.QUEUED:
        queue_view.queued_notice(store, run)
    refreshing = store_errors_shown(live_curves_view)
    paused = live and tab_hidden()  # the browser tab is hidden: no refresh until it shows again
    every = LIVE_EVERY_S if live and not paused else None
    st.fragment(refreshing, run_every=every)(run.id, drawn_for, run_header(run), live, paused)
    show_result(run, store)


def run_header(run) -> tuple:
    """What the panel's header shows of a run: a refresh that finds it changed draws the page again."""
    return run_label(run), run.status, engine_label(run), run.device


def live_curves_view(run_id: int, drawn_for: tuple, header: tuple, live: bool, paused: bool):
    """What refreshes every LIVE_EVERY_S while a run is active: one element, the progress line and
    both charts (fmnist.live_chart). A browser re-renders every element a refresh sends, so the
    header and the Stop button above stay out of it; it sends the component new numbers and the
    browser redraws only what changed. When anything else changed (a run started or ended, the
    header, the person signed out, the tab was hidden or shown again: `paused`, TAB_HIDDEN) the
    page draws itself again: a page run is what sets or clears the browser's refresh timer."""
    store = get_store()
    active_runs(store)  # marks runs whose process died, so none shows 'running' forever
    runs = store.list_runs()
    run = next((run for run in runs if run.id == run_id), None)
    if (activity(runs) != drawn_for or run is None or run_header(run) != header or current_person() is None
            or (live and tab_hidden() != paused)):
        st.rerun()
    curves = cached_curves(str(store.home), run.id, store.point_counts(run.id), run.steps_per_epoch, run.total_epochs)
    live_chart(curves, progress_line(run) if run.status == RunStatus.RUNNING else None)
    live_announcement(run, lambda: store.epochs(run.id))
    watch_tab_visibility(LIVE_VISIBILITY, watch=live)  # a view that stands still listens to nothing


enter_through_navigation()
st.title("Build & Train")
init_state()
open_link()  # a link's settings, or a Try it's, into the controls before they are drawn
queue_view.clamp_to_caps(queue_view.caps_here(), "build_epochs", "build_limit", ALL_IMAGES)  # a teacher's caps win
speeds = speeds_here(get_store().list_runs())  # what the runs measured on this machine: the times the page shows
preset_times = {name: time_here(spec, speeds, st.session_state.build_backend).text() for name, spec in PRESETS.items()}
build, picture = st.columns([1, 1.2], gap="large")
with build:
    st.selectbox("Preset", ["Custom"] + list(PRESETS), key="build_preset", on_change=apply_preset,
                 format_func=lambda name: preset_label(name, preset_times))
    conv = conv_controls(st.session_state.get("build_activation", "relu"))
    layers = layer_controls()
    with st.expander("Training settings", expanded=True):
        settings, limit = training_controls(conv)

spec, error = None, None
try:
    spec = validate(ModelSpec(layers=tuple(layers), conv=tuple(conv), **settings))
except SpecError as e:
    error = str(e)
keep_in_link(spec)  # the address follows the settings

with picture:
    if spec is None:
        st.error(f"This stack cannot be built: {error}")
    else:
        st.metric("Parameters", f"{count_params(spec):,}")
        st.plotly_chart(cached_diagram(spec), key="stack_diagram", config={"displayModeBar": False})
        st.dataframe(cached_summary(spec), hide_index=True, width="stretch")
    name = st.text_input("Run name (optional)", key="build_run_name", placeholder="e.g. wide with dropout", max_chars=MAX_RUN_NAME)
    backend_setting = backend_control(spec)
    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=spec is None, key="start"):
        start_run(spec, name, limit, backend_setting)
    if spec is not None:
        st.caption(f"This training: {time_here(spec, speeds, backend_setting, limit).text()}", help="measured by the runs that finished on this "
                   "machine's CPU, or estimated from their speed; the first run of a kind measures it")

st.divider()
live_panel()

"""Search: let Optuna find a stack, watch the trials race and get pruned, then train the best one honestly."""


import streamlit as st

from fmnist import services
from fmnist.access import may_manage
from fmnist.app import activity, caches, navigation, session
from fmnist.app.queue_view import caps_caption, caps_here, clamp_to_caps, image_choices, most_epochs, most_minutes
from fmnist.dataset import FASHION_MNIST
from fmnist.models import ACTIVATIONS, MAX_CONV_BLOCKS, MAX_LAYERS, SpecError, stack_name
from fmnist.runs import RunKind, RunStatus
from fmnist.search_charts import accuracy_vs_size, best_so_far, importance_bars, trials_table, validation_curves
from fmnist.search_space import BATCH_SIZES, FILTER_CHOICES, SearchSpace, describe_size, validate_space
from fmnist.studies import best_trial_run, importances, load_study, parallel_coordinates
from fmnist.text import shown

WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [0.0001, 0.0003, 0.001, 0.003, 0.01]
IMAGES = [2000, 5000, 10000, 20000, 30000, FASHION_MNIST.train_size]
NO_TOOLBAR = {"displayModeBar": False}
DEFAULTS = SearchSpace()


def space_controls() -> SearchSpace | None:
    """The space and budget as widgets; None after saying what is wrong with them."""
    st.markdown("**What to try**")
    layers = st.slider("Dense layers", 1, MAX_LAYERS, DEFAULTS.layers, key="search_layers")
    width = st.select_slider("Each layer's width (log scale)", WIDTHS, DEFAULTS.width, key="search_width")
    activations = st.multiselect("Activations", ACTIVATIONS, list(DEFAULTS.activations), key="search_activations")
    dropout = st.slider("Dropout", 0.0, 0.5, DEFAULTS.dropout, step=0.05, key="search_dropout")
    batch_norm = st.multiselect("Batch-norm", ["off", "on"], ["off", "on"], key="search_batch_norm")
    learning_rate = st.select_slider("Learning rate (log scale)", LEARNING_RATES, (0.0003, 0.003), key="search_lr")
    batch_sizes = st.multiselect("Batch sizes", BATCH_SIZES, list(DEFAULTS.batch_sizes), key="search_batch_sizes")
    schedules = st.multiselect("Learning-rate schedules", ["constant", "cosine"], list(DEFAULTS.lr_schedules), key="search_schedules",
                               help="cosine: decays to zero over the run, a trial's and the best's retraining alike")
    with st.expander("Convolutional blocks (slower: minutes per trial)"):
        conv = st.slider("Conv blocks", 0, MAX_CONV_BLOCKS, DEFAULTS.conv_blocks, key="search_conv")
        filters = st.multiselect("Filters", FILTER_CHOICES, list(DEFAULTS.filters), key="search_filters")
    st.markdown("**Each trial, and the budget**")
    caps = caps_here()  # a teacher's caps: the controls offer no more
    clamp_to_caps(caps, "search_epochs", "search_images", FASHION_MNIST.train_size, "search_minutes")
    cols = st.columns(2)
    images = cols[0].select_slider("Training images", image_choices(caps, IMAGES), min(DEFAULTS.images, caps.max_images or DEFAULTS.images),
                                   key="search_images", help="the first N training images; the last 10 % of them are the validation set")
    epochs = cols[1].slider("Epochs per trial", 1, most_epochs(caps, 30), min(DEFAULTS.epochs, most_epochs(caps, 30)), key="search_epochs")
    trials = cols[0].number_input("Trials (at most)", 1, 1000, DEFAULTS.trials, key="search_trials")
    minutes = cols[1].number_input("Minutes (at most)", 1, most_minutes(caps, 24 * 60), min(int(DEFAULTS.minutes), most_minutes(caps, 24 * 60)),
                                   key="search_minutes")
    caps_caption(caps)
    seed = cols[0].number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="search_seed", help="the same seed, the same search")
    try:
        return validate_space(SearchSpace(
            layers=layers, width=width, activations=tuple(activations), dropout=dropout,
            batch_norm=tuple(choice == "on" for choice in batch_norm), learning_rate=learning_rate,
            batch_sizes=tuple(batch_sizes), lr_schedules=tuple(schedules), conv_blocks=conv, filters=tuple(filters), images=images, epochs=epochs,
            trials=int(trials), minutes=float(minutes), seed=int(seed),
        ))
    except SpecError as e:
        st.error(f"This space cannot be searched: {e}", icon=":material/error:")
        return None


def start_search(space: SearchSpace) -> None:
    if caches.dataset_or_message() is None:
        return
    try:
        search_id = services.start_search(caches.get_store(), session.acting(), space)
    except services.REFUSED as e:
        st.error(str(e), icon=":material/block:")
        return
    st.session_state.search_id = search_id
    st.toast(f"Search #{search_id} started", icon=":material/travel_explore:")


def search_label(search) -> str:
    return f"#{search.id} {search.name} · {search.spec.epochs} epochs on {search.train_limit:,} images"


@st.cache_data(max_entries=8, show_spinner=False)
def study_figures(home: str, search_id: int, ended: int):
    """Optuna's parallel coordinates and importances, recomputed only when another trial has ended."""
    study = load_study(caches.get_store(), search_id)
    if study is None:
        return None, {}
    return parallel_coordinates(study), importances(study)


def controls(store, search) -> None:
    """Stop or resume the search (its owner or a teacher), and train its best trial for real."""
    person = session.current_person()
    mine = person is not None and may_manage(person, search)
    stop, resume, best_box = st.columns([1, 1, 2.5], vertical_alignment="bottom")
    if search.active:
        if stop.button("Stop search", key="search_stop", icon=":material/stop_circle:", disabled=not mine,
                       help="the trial that trains ends at its next batch; finished trials stay"):
            act(lambda: services.stop(store, session.acting(), search.id))
    else:
        if resume.button("Resume", key="search_resume", icon=":material/play_arrow:", disabled=not mine,
                         help="go on from the trials it has, with its budget (raise Trials or Minutes on the left to extend it)"):
            trials, minutes = st.session_state.search_trials, st.session_state.search_minutes
            act(lambda: services.resume_search(store, session.acting(), search.id, trials=int(trials), minutes=float(minutes)))
        if stop.button("Delete…", key="search_delete", icon=":material/delete:", disabled=not mine):
            st.session_state.search_confirm = search.id
        if st.session_state.get("search_confirm") == search.id:
            st.warning(f"Delete search #{search.id} with its {len(store.children(search.id))} trials and their curves?",
                       icon=":material/warning:")
            if st.button("Yes, delete", key="search_delete_yes", type="primary"):
                st.session_state.search_confirm = None
                act(lambda: services.delete(store, session.acting(), search.id))
    best = best_trial_run(store, search.id)
    if best is None:
        return
    with best_box:
        epochs = st.number_input("Epochs for the best", 1, most_epochs(caps_here(), 100), min(20, most_epochs(caps_here(), 100)),
                                 key="search_best_epochs")
        if st.button(f"Train the best (trial {best.name.split()[1]}) on all {FASHION_MNIST.train_size:,} images", key="search_train_best",
                     type="primary", icon=":material/workspace_premium:"):
            try:
                run_id = services.train_best_of_search(store, session.acting(), search.id, int(epochs))
                st.success(f"Run #{run_id} trains the best settings on all training images, then scores the {FASHION_MNIST.test_size:,} test images: "
                           "see it on Build & Train and the Leaderboard.", icon=":material/rocket_launch:")
                st.page_link(navigation.LEADERBOARD_PAGE, label="Leaderboard", icon=":material/leaderboard:")
            except services.REFUSED as e:
                st.error(str(e), icon=":material/block:")


def act(action) -> None:
    """A service call (it checks the person may), then the page again; refused: why, and nothing changes."""
    try:
        action()
        st.rerun()
    except services.REFUSED as e:
        st.error(str(e), icon=":material/lock:")


def show_search(store, search_id: int) -> None:
    search = store.get(search_id)
    trials = [run for run in store.children(search_id) if run.kind == RunKind.TRIAL]
    ended = [run for run in trials if not run.active]
    space = SearchSpace.from_dict(search.space)
    best = f" · best validation accuracy {search.best_val_acc:.4f}" if search.best_val_acc else ""
    st.markdown(f"#### #{search.id} {shown(search.name)} · {search.status}{best}")
    limits = (f"{space.trials} trials" if space.trials else "", f"{space.minutes:g} minutes" if space.minutes else "")
    budget = " or ".join(part for part in limits if part)
    pruned = sum(run.status == RunStatus.PRUNED for run in trials)
    st.caption(f"{len(ended)} trials ended ({pruned} pruned) in {(search.train_s or 0) / 60:.1f} of {budget}; "
               f"{space.epochs} epochs on {space.images:,} images each. {search.error or ''}")
    if search.status == RunStatus.QUEUED:
        st.info("Queued: it starts when the search before it ends.", icon=":material/schedule:")
    controls(store, search)
    if not trials:
        st.info("The first trial is starting…" if search.active else "No trials.", icon=":material/hourglass_top:")
        return
    running = [run for run in trials if run.status == RunStatus.RUNNING]
    for run in running:
        st.progress(run.fraction_done(), text=f"{shown(run.name)}: {stack_name(run.spec)}, epoch {max(run.epoch, 1)}/{run.spec.epochs}, "
                                              f"{(run.samples_per_s or 0):,.0f} samples/s")
    left, right = st.columns(2)
    left.plotly_chart(best_so_far(trials), key="search_best_chart", config=NO_TOOLBAR)
    right.plotly_chart(validation_curves(trials, store.epochs_of([run.id for run in trials])), key="search_curves", config=NO_TOOLBAR)
    right.caption("Pruned trials: dotted, cut where the pruner stopped them (×).")
    st.dataframe(trials_table(trials), hide_index=True, width="stretch", height=min(38 + 35 * len(trials), 420),
                 column_config={"best val accuracy": st.column_config.NumberColumn(format="%.4f"),
                                "learning rate": st.column_config.NumberColumn(format="%.2g"),
                                "time (s)": st.column_config.NumberColumn(format="%.1f"),
                                "params": st.column_config.NumberColumn(format="localized")})
    coordinates, importance = study_figures(str(store.home), search_id, len(ended))
    if coordinates is not None:
        st.plotly_chart(coordinates, key="search_parallel", config=NO_TOOLBAR)
    left, right = st.columns(2)
    if importance:
        left.plotly_chart(importance_bars(importance), key="search_importance", config=NO_TOOLBAR)
    right.plotly_chart(accuracy_vs_size(trials), key="search_size", config=NO_TOOLBAR)


@caches.store_errors_shown
def live_search(search_id: int) -> None:
    store = caches.get_store()
    activity.active_runs(store)  # marks a search whose process died as interrupted (resumable)
    show_search(store, search_id)
    search = store.get(search_id)
    if not search.active and st.session_state.get("search_was_active") == search_id:
        st.session_state.search_was_active = None
        st.rerun()  # the whole page once: the view stops refreshing


navigation.enter_through_navigation()
st.title("Search")
st.caption("Optuna tries stacks for you: its TPE sampler proposes settings from what the earlier trials scored, and a "
           "median pruner ends a trial whose validation accuracy falls behind. Trials are compared on **validation accuracy** "
           "(images held out of each trial's training images), never on the test set: only *Train the best* scores the "
           f"{FASHION_MNIST.test_size:,} test images, once, for the settings the search chose.")
store = caches.get_store()
setup, view = st.columns([1, 2.2], gap="large")
with setup:
    space = space_controls()
    if space is not None:
        st.metric("The space holds", describe_size(space), help="different stacks and settings (a learning rate counted once)")
    if st.button("Start search", type="primary", icon=":material/travel_explore:", disabled=space is None, key="search_start"):
        start_search(space)

with view:
    searches = [run for run in store.list_runs() if run.kind == RunKind.SEARCH]
    if not searches:
        st.info("No searches yet: set the space on the left (the defaults take about ten minutes) and press **Start search**.",
                icon=":material/info:")
    else:
        ids = [run.id for run in reversed(searches)]
        if st.session_state.get("search_id") not in ids:
            st.session_state.search_id = next((run.id for run in reversed(searches) if run.active), ids[0])
        labels = {run.id: search_label(run) for run in searches}
        chosen = st.selectbox("Search", ids, format_func=labels.get, key="search_id")
        active = store.get(chosen).active
        if active:
            st.session_state.search_was_active = chosen
        st.fragment(live_search, run_every=1.0 if active else None)(chosen)

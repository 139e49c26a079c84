"""What every page shares: the cached run store and dataset, the sidebar's run status, and the
server's set-up (no Keras reset after each run, TensorFlow warmed up in the background)."""

import os
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from fmnist.data import DatasetError, load_dataset
from fmnist.home import home_dir
from fmnist.models import stack_name
from fmnist.store import ACTIVE, RunStore

TRAIN_PAGE = "pages/train.py"
ENTERED = "entered_through_navigation"  # set by streamlit_app.py
LEADERBOARD_PAGE = "pages/leaderboard.py"
# The sidebar's refresh: every STATUS_EVERY_S while a run is queued or training (its progress),
# every IDLE_STATUS_EVERY_S with nothing active, only to notice a run started elsewhere (another
# tab, the command line): each refresh makes the browser redraw the page's elements, which on a
# page full of charts costs more than the refresh itself (README, "The app").
STATUS_EVERY_S = 2.0
IDLE_STATUS_EVERY_S = 10.0
ACTIVITY = "active_runs_drawn"  # the active runs a page run was drawn for: see remember_activity
PAGE_ACTIVITY = "active_runs_page"  # the same, as the page itself saw them (page_drawn_for)
SIDEBAR_QUIET = "sidebar_quiet"  # the page refreshes itself while runs are active; the sidebar does not


def enter_through_navigation() -> None:
    """Call first thing in every page. Because the app has a pages/ folder, Streamlit runs a
    page file on its own (its older multipage mode) until st.navigation has run once in the
    server, so the first visitor to open, say, /leaderboard directly would get a bare page list
    without the app's layout. Leave that mode and rerun: the rerun goes through
    streamlit_app.py and lands on the same page. (A session that already came through
    streamlit_app.py, as AppTest's do, keeps its run and the click that started it.)"""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and ENTERED not in st.session_state:
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource
def open_store(home: str) -> RunStore:
    return RunStore(Path(home))


def get_store() -> RunStore:
    return open_store(str(home_dir()))


@st.cache_resource(show_spinner="Loading Fashion-MNIST…")
def get_dataset():
    """Loaded once per server. A DatasetError is not cached: install the data, press R, and it loads."""
    return load_dataset()


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def cached_model(home: str, run_id: int, modified_ns: int):
    """One loaded Keras model per file version: a replaced file is loaded anew."""
    return open_store(home).load_model(run_id)


def load_run_model(run_id: int):
    """The run's model, cached; ModelFileError if its file is missing or corrupt (errors are not cached)."""
    store = get_store()
    path = store.model_path(run_id)
    modified_ns = path.stat().st_mtime_ns if path.is_file() else 0
    return cached_model(str(store.home), run_id, modified_ns)


def dataset_or_message():
    """The dataset, or None after showing how to get it."""
    try:
        return get_dataset()
    except DatasetError as e:
        st.error(f"**The Fashion-MNIST dataset is missing.** {e}", icon=":material/database_off:")
        return None


def keep_widget_state(prefix: str = "build_") -> None:
    """Streamlit forgets a widget's value once it is not drawn (another page, a
    hidden layer's slider); writing the values back keeps the stack as it was left."""
    for key in list(st.session_state):
        if key.startswith(prefix):
            st.session_state[key] = st.session_state[key]


def run_label(run) -> str:
    return f"#{run.id} {run.name} ({stack_name(run.spec)})"


def activity(runs) -> tuple:
    """Which runs are queued or training, and which of the two: a page drawn for other ones is out of date."""
    return tuple((run.id, run.status) for run in runs if run.active)


def page_drawn_for(runs) -> None:
    """A page whose view depends on the active runs (Build & Train's live panel) says which runs it
    was drawn from, so that a run starting or ending between that and the end of the page run is
    not missed. Other pages count the runs active at the end of their run (remember_activity)."""
    st.session_state[PAGE_ACTIVITY] = activity(runs)


def remember_activity() -> None:
    """Last thing of every page run (streamlit_app.py): the active runs the page now shows. A refresh
    that finds others (activity_changed) reruns the page, so that it draws itself for them: Build &
    Train's live panel refreshing while a run trains and standing still once none does, the
    Leaderboard with the new run. Run ends and starts are rare: these page runs cost nothing."""
    drawn = st.session_state.pop(PAGE_ACTIVITY, None)
    st.session_state[ACTIVITY] = drawn if drawn is not None else activity(get_store().list_runs(statuses=ACTIVE))


def activity_changed(runs) -> bool:
    """In a fragment's refresh: whether other runs are active than the page was drawn for.
    False during a page run, whose own end is what counts (remember_activity)."""
    drawn = st.session_state.get(ACTIVITY)
    return drawn is not None and activity(runs) != drawn


def sidebar_status(page_refreshes_while_active: bool = False) -> None:
    """Which run trains now and what waits, wherever the person is. It refreshes every
    STATUS_EVERY_S while a run is active, every IDLE_STATUS_EVERY_S otherwise; and not at all
    on a page that refreshes itself while a run is active (Build & Train), which then also
    watches for runs starting and ending."""
    st.session_state[ACTIVITY] = None  # set when the page is done (remember_activity)
    active = get_store().list_runs(statuses=ACTIVE)
    quiet = page_refreshes_while_active and bool(active)
    st.session_state[SIDEBAR_QUIET] = quiet
    every = None if quiet else STATUS_EVERY_S if active else IDLE_STATUS_EVERY_S
    st.fragment(sidebar_panel, run_every=every)(quiet)


def sidebar_panel(quiet: bool) -> None:
    active = get_store().list_runs(statuses=ACTIVE)  # the active runs only: this runs on every open tab
    if activity_changed(active):
        st.rerun()
    running = [r for r in active if r.status == "running"]
    queued = [r for r in active if r.status == "queued"]
    if not running:
        st.caption("No run is training.")
    for run in running:
        st.markdown(f"**Training:** {run_label(run)}")
        if not quiet:  # a quiet sidebar's bar would stand still: the page below shows the progress
            st.progress(run.fraction_done(), text=f"epoch {run.epoch}/{run.total_epochs}")
    if queued:
        st.caption("Queued: " + ", ".join(f"#{r.id}" for r in queued))
    if active and not quiet:
        st.page_link(TRAIN_PAGE, label="Watch it live", icon=":material/monitoring:")


def keep_keras_between_runs() -> None:
    """Streamlit (1.67, `_clean_problem_modules` in streamlit/runtime/scriptrunner/script_runner.py)
    calls `keras.backend.clear_session()` after every script run once Keras is imported: a full
    garbage collection and TensorFlow's kernel cache thrown away each time, and every refresh of
    a fragment is a script run, on every open tab (README, "The app"). This server never builds
    a Keras model (training runs in processes of its own); it only predicts with loaded ones,
    which lose their compiled kernels on each reset. So nothing is cleared; the hook's other
    task, closing matplotlib figures, has nothing to do here (no page uses pyplot)."""
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = lambda: None


@st.cache_resource(show_spinner=False)
def warm_up_in_background() -> threading.Thread | None:
    """Once per server process: load TensorFlow, the dataset and the best run's model in a
    thread, so that the first visit to Classify finds them ready (TensorFlow's import alone
    takes seconds). Started once the first page has been drawn, so it never delays that page.

    Not under AppTest (`global.appTest`), whose tests check that pages other than Classify
    never import TensorFlow; FMNIST_WARM_UP=0 turns it off (a server that never classifies)."""
    from streamlit import config  # AppTest patches this module's get_option, not st.get_option

    if config.get_option("global.appTest") or os.environ.get("FMNIST_WARM_UP", "1") == "0":
        return None
    thread = threading.Thread(target=warm_up, name="fmnist-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up() -> None:
    from fmnist.leaderboard import best_run
    from fmnist.prediction import predict_image

    try:
        get_dataset()
        best = best_run(get_store().list_runs())
        if best is None:
            import keras  # noqa: F401  (the first model trained will need it)
            return
        model = load_run_model(best.id)
        predict_image(model, np.zeros((28, 28), dtype=np.float32))  # traces the predict step once
    except Exception:  # noqa: S110  (a page that needs what failed here shows why)
        pass

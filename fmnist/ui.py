"""What every page shares: the cached run store and dataset, models when a page needs one, and the
sidebar's run status. Store faults are shown as one clear message, never as a traceback."""

import functools
import secrets
from pathlib import Path

import numpy as np
import streamlit as st

from fmnist.access import (
    LOCAL_ADMIN,
    AccessError,
    Person,
    Sharing,
    SharingConfigError,
    oidc_person,
    sharing_from,
    sign_in_with_class_code,
)
from fmnist.data import DatasetError, load_dataset
from fmnist.evaluation import read_probabilities
from fmnist.home import StoreError, home_dir
from fmnist.models import stack_name
from fmnist.projection import PCA, model_version, read_projection, run_projection_path
from fmnist.runs import ACTIVE, RunKind, RunStatus
from fmnist.store import RunStore, open_store
from fmnist.worker import reap_dead_runs

TRAIN_PAGE = "pages/train.py"
ENTERED = "entered_through_navigation"  # set by streamlit_app.py
LEADERBOARD_PAGE = "pages/leaderboard.py"
SEARCH_PAGE = "pages/search.py"
INSIDE_PAGE = "pages/inside.py"
# What another page asks the Inside page to open: {"run": id, "index": test image} or {"run": id, "classify": True}.
# Not a widget's key: Streamlit forgets those of a page that is not shown.
INSIDE_REQUEST = "inside_request"


def enter_through_navigation() -> None:
    """Call first thing in every page. Because the app has a pages/ folder, Streamlit 1.67 runs a
    page file on its own (its older multipage mode) until st.navigation has run once in the
    server, so the first visitor to open, say, /leaderboard directly would get a bare page list
    without the app's layout. Streamlit decides that mode from the folder's existence alone and
    offers no setting for it (streamlit/runtime/pages_manager.py), so leave the mode as
    st.navigation itself does, and rerun: the rerun goes through streamlit_app.py and lands on
    the same page. (A session that already came through streamlit_app.py, as AppTest's do,
    keeps its run and the click that started it.) tests/test_browser_direct_url.py guards it."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and ENTERED not in st.session_state:
        PagesManager.uses_pages_directory = False
        st.rerun()
    gate()  # and whichever way a page is reached, nobody uses it without signing in


def gate():
    """(sharing, person) for this run of the app; otherwise show why not (a store that cannot be
    opened, sharing without a working sign-in, or the sign-in form) and stop the run there."""
    try:
        get_store()
        sharing = current_sharing()
        person = current_person(sharing)
    except StoreError as e:
        show_store_error(e)
        st.stop()
    except SharingConfigError as e:  # asked to serve others without a working sign-in: serve nothing
        st.error(f"**Fashion-MNIST Studio will not serve this page without sign-in.** {e}", icon=":material/lock:")
        st.stop()
    if person is None:
        sign_in_form(sharing)
        st.stop()
    return sharing, person


def show_store_error(error: StoreError) -> None:
    st.error(f"**The run store cannot be used.** {error}", icon=":material/database_off:")


def store_errors_shown(function):
    """For fragments, which rerun on their own: a store fault shows its message in place."""
    @functools.wraps(function)
    def shown(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except StoreError as e:
            show_store_error(e)
    return shown


@st.cache_resource
def cached_store(home: str) -> RunStore:
    return open_store(Path(home))


def get_store() -> RunStore:
    """The run store (opened once per server); raises StoreError, which streamlit_app.py shows."""
    return cached_store(str(home_dir()))


@st.cache_resource(show_spinner="Loading Fashion-MNIST…")
def get_dataset():
    """Loaded once per server. A DatasetError is not cached: install the data, press R, and it loads."""
    return load_dataset()


def dataset_or_message():
    """The dataset, or None after showing how to get it."""
    try:
        dataset = get_dataset()
    except DatasetError as e:
        st.error(f"**The Fashion-MNIST dataset is missing.** {e}", icon=":material/database_off:")
        return None
    if dataset.note:
        st.caption(dataset.note)
    return dataset


# --- models: the Keras side loads only on the pages and paths that need one ---

@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def cached_model(home: str, run_id: int, modified_ns: int):
    """One loaded Keras model per file version: a replaced file is loaded anew."""
    from fmnist.prediction import load_model  # TensorFlow loads here, when a model is needed

    return load_model(cached_store(home), run_id)


def load_run_model(run_id: int):
    """The run's model, cached; ModelFileError if its file is missing or corrupt (errors are not cached)."""
    store = get_store()
    path = store.model_path(run_id)
    modified_ns = path.stat().st_mtime_ns if path.is_file() else 0
    return cached_model(str(store.home), run_id, modified_ns)


@st.cache_resource(show_spinner="Opening the model up…", max_entries=8)
def cached_inside(home: str, run_id: int, modified_ns: int):
    from fmnist.inside import Inside  # TensorFlow: the model is loaded anyway

    return Inside(cached_model(home, run_id, modified_ns))


def load_run_inside(run_id: int):
    """The run's model opened up (fmnist.inside.Inside), cached with the model; ModelFileError for a
    missing or corrupt file, InsideError for a model that does not take 28×28 images to ten classes."""
    store = get_store()
    path = store.model_path(run_id)
    return cached_inside(str(store.home), run_id, path.stat().st_mtime_ns if path.is_file() else 0)


def run_pca(run_id: int, dataset):
    """The run's PCA of its last hidden layer for the test images: from its folder, or computed once
    from its model (ModelFileError, InsideError)."""
    store = get_store()
    found = read_projection(run_projection_path(store, run_id, PCA), len(dataset.y_test), model_version(store, run_id))
    if found is None:
        from fmnist.inside import run_pca as compute_pca  # TensorFlow: only when the run has no PCA yet

        found = compute_pca(store, run_id, load_run_inside(run_id).model, dataset)
    return found


def run_probabilities(run_id: int, dataset) -> np.ndarray:
    """The run's test-set probabilities: stored with the run, or computed once from its model
    (ModelFileError if that cannot be loaded)."""
    store = get_store()
    probs = read_probabilities(store.probs_path(run_id), len(dataset.y_test))
    if probs is None:
        from fmnist.prediction import probabilities_on_test_set  # TensorFlow: only for a run without stored ones

        probs = probabilities_on_test_set(store, run_id, dataset, load_run_model)
    return probs


# --- who is here (fmnist.access decides what they may do) ---

SIGN_IN = "sign_in_token"  # a class member's sign-in, set only by sign_in_form: never a widget's key


def read_secrets() -> dict:
    """Streamlit's secrets.toml as a dict: empty when there is none, SharingConfigError when one cannot be read."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError as e:  # Streamlit's 'not found' also covers a file it could not parse
        if any(Path(path).is_file() for path in st.get_option("secrets.files")):
            raise SharingConfigError(str(e)) from e
        return {}


def current_sharing() -> Sharing:
    """How the app is served now; SharingConfigError when sharing is asked for but sign-in is not configured."""
    return sharing_from(read_secrets(), st.get_option("server.address"))


def current_person(sharing: Sharing | None = None) -> Person | None:
    """Who uses this session: the local admin when the app is not shared, else who signed in (None: nobody)."""
    sharing = sharing or current_sharing()
    if not sharing.signs_in:
        return LOCAL_ADMIN
    if sharing.mode == "oidc":
        return oidc_person(st.user.email, st.user.to_dict().get("name"), sharing) if st.user.is_logged_in else None
    token = st.session_state.get(SIGN_IN)
    found = get_store().signed_in(token) if token else None
    return Person(*found) if found else None


def acting_person() -> Person:
    """The person about to change something, checked at that moment (a button's callback runs before
    the page): AccessError for a tab whose person signed out meanwhile."""
    person = current_person()
    if person is None:
        raise AccessError("You are signed out (here or in another tab): sign in again to do that.")
    return person


def max_runs_per_person() -> int:
    return current_sharing().max_runs_per_person


def sign_in_form(sharing: Sharing) -> None:
    """The sign-in page: the school's provider (st.login), or the class code, a name and a password of one's own."""
    st.title("Fashion-MNIST Studio")
    if sharing.mode == "oidc":
        st.write("Sign in with your school account to train, compare and classify.")
        if st.button("Sign in", type="primary", icon=":material/login:"):
            st.login()
        return
    st.write("Sign in with the class code your teacher gave you. The first time, your name and password are yours from then on.")
    with st.form("sign_in"):
        code = st.text_input("Class code", type="password")
        name = st.text_input("Your name", max_chars=40)
        password = st.text_input("Your password", type="password", help="at least 6 characters; the first sign-in sets it")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        try:
            person = sign_in_with_class_code(sharing, get_store(), code, name, password)
        except AccessError as e:
            st.error(str(e), icon=":material/lock:")
            return
        token = secrets.token_urlsafe(32)
        get_store().add_sign_in(token, person.id, person.name, person.admin)
        st.session_state[SIGN_IN] = token
        st.rerun()


def sign_out(person: Person, sharing: Sharing) -> None:
    if sharing.mode == "oidc":
        st.logout()
    get_store().sign_out(person.id)
    st.session_state.pop(SIGN_IN, None)


def person_line(person: Person, sharing: Sharing) -> None:
    """The sidebar's 'signed in as' with the sign-out button, when the app is shared."""
    if not sharing.signs_in:
        return
    st.caption(f"Signed in as **{person.name}**" + (" (teacher)" if person.admin else ""))
    st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out, args=(person, sharing))


# --- state and labels ---

def keep_widget_state(prefix: str = "build_") -> None:
    """Streamlit forgets a widget's value once it is not drawn (another page, a
    hidden layer's slider); writing the values back keeps the stack as it was left."""
    for key in list(st.session_state):
        if key.startswith(prefix):
            st.session_state[key] = st.session_state[key]


def run_label(run) -> str:
    return f"#{run.id} {run.name} ({stack_name(run.spec)})"


def active_runs(store: RunStore) -> list:
    """Queued and running runs, after marking those whose process died as interrupted."""
    reap_dead_runs(store)
    return store.list_runs(statuses=ACTIVE)


@st.fragment(run_every=2.0)
@store_errors_shown
def sidebar_status():
    """Which run trains now and what waits, refreshed wherever the person is."""
    active = active_runs(get_store())
    searches = [r for r in active if r.kind == RunKind.SEARCH and r.status == RunStatus.RUNNING]
    running = [r for r in active if r.kind != RunKind.SEARCH and r.status == RunStatus.RUNNING]
    queued = [r for r in active if r.status == RunStatus.QUEUED]
    for search in searches:
        st.markdown(f"**Searching:** #{search.id} {search.name}")
    if not running:
        st.caption("No run is training.")
    for run in running:
        st.markdown(f"**Training:** {run_label(run)}")
        st.progress(run.fraction_done(), text=f"epoch {run.epoch}/{run.total_epochs}")
    if queued:
        st.caption("Queued: " + ", ".join(f"#{r.id}" for r in queued))
    if active:
        st.page_link(TRAIN_PAGE, label="Watch it live", icon=":material/monitoring:")

"""What every page shares: the cached run store and dataset, models when a page needs one, and the
sidebar's run status. Store faults are shown as one clear message, never as a traceback. And the
server's set-up: no Keras reset after each run, TensorFlow warmed up in the background."""

import functools
import hashlib
import os
import secrets
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from fmnist import cluster
from fmnist.access import (
    LOCAL_ADMIN,
    AccessError,
    Person,
    Sharing,
    SharingConfigError,
    check_served_directly,
    client_address,
    oidc_person,
    sharing_from,
    sign_in_with_class_code,
)
from fmnist.data import DatasetError, load_dataset
from fmnist.database import DB_ENV
from fmnist.evaluation import read_probabilities
from fmnist.home import StoreError, home_dir
from fmnist.models import stack_name
from fmnist.projection import PCA, model_version, read_projection, run_projection_path
from fmnist.runs import ACTIVE, RunKind, RunStatus
from fmnist.store import RunStore, open_store
from fmnist.tab_visibility import tab_hidden, watch_tab_visibility
from fmnist.text import shown
from fmnist.worker import reap_dead_runs

TRAIN_PAGE = "pages/train.py"
ENTERED = "entered_through_navigation"  # set by streamlit_app.py
LEADERBOARD_PAGE = "pages/leaderboard.py"
SEARCH_PAGE = "pages/search.py"
INSIDE_PAGE = "pages/inside.py"
# What another page asks the Inside page to open: {"run": id, "index": test image} or {"run": id, "classify": True}.
# Not a widget's key: Streamlit forgets those of a page that is not shown.
INSIDE_REQUEST = "inside_request"
# The sidebar's refresh: every STATUS_EVERY_S while a run is queued or training (its progress),
# every IDLE_STATUS_EVERY_S with nothing active, only to notice a run started elsewhere (another
# tab, the command line): each refresh makes the browser redraw the page's elements, which on a
# page full of charts costs more than the refresh itself (README, "The app").
STATUS_EVERY_S = 2.0
IDLE_STATUS_EVERY_S = 10.0
ACTIVITY = "active_runs_drawn"  # the active runs a page run was drawn for: see remember_activity
PAGE_ACTIVITY = "active_runs_page"  # the same, as the page itself saw them (page_drawn_for)
SIDEBAR_VISIBILITY = "sidebar_visibility"  # its tab_visibility component
SIDEBAR_QUIET = "sidebar_quiet"  # the page refreshes itself while runs are active; the sidebar does not


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
        check_served_directly(sharing, request_headers())
        if sharing.signs_in:  # people who use a shared app see a message, never a traceback with the server's paths
            st.set_option("client.showErrorDetails", "none")
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


def cached_store(home: str) -> RunStore:
    """The store with its folders in home, on FMNIST_DB's database (or SQLite in home)."""
    return store_for(home, os.environ.get(DB_ENV, ""))


@st.cache_resource
def store_for(home: str, database: str) -> RunStore:
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


def dataset_or_stop():
    """The dataset, or the page ends after showing how to get it."""
    dataset = dataset_or_message()
    if dataset is None:
        st.stop()
    return dataset


def no_runs_yet(message: str) -> None:
    """A page that needs a trained run, with none to show: why, and the way to Build & Train."""
    st.info(message, icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Build & Train", icon=":material/model_training:")


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


@st.cache_resource(show_spinner="Calibrating the unusual-picture check on held-out images…", max_entries=8)
def cached_outlier_check(home: str, run_id: int, modified_ns: int):
    from fmnist.outlier_check import HiddenAndOutput, run_check  # TensorFlow: the model is loaded anyway

    outputs = HiddenAndOutput(cached_model(home, run_id, modified_ns))
    return outputs, run_check(cached_store(home), run_id, outputs, get_dataset())


def load_run_outlier_check(run_id: int):
    """The run's model's last hidden layer and probabilities (fmnist.outlier_check.HiddenAndOutput) with
    its calibrated check (fmnist.outliers.OutlierCheck), cached with the model; ModelFileError, InsideError
    (a model that does not take 28×28 images to ten classes) or DatasetError (nothing to calibrate on)."""
    store = get_store()
    path = store.model_path(run_id)
    return cached_outlier_check(str(store.home), run_id, path.stat().st_mtime_ns if path.is_file() else 0)


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


# --- uploads ---

def open_upload(data: bytes):
    """An uploaded picture as fmnist.imaging.open_image makes it (its work image), decoded once per file:
    the page's reruns (every widget change) find it in the cache. ImageError for a file that cannot be used,
    remembered too, so a bad file is not decoded again on every rerun either."""
    from fmnist.imaging import ImageError  # only the pages that take uploads load the imaging code

    found = decoded_upload(hashlib.sha256(data).hexdigest(), data)
    if isinstance(found, str):
        raise ImageError(found)
    return found


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Reading the picture…")
def decoded_upload(digest: str, _data: bytes):
    """Keyed by the file's hash (_data is not hashed again); a work image is at most 3.2 MB (fmnist.imaging)."""
    from fmnist.imaging import ImageError, open_image

    try:
        return open_image(_data)
    except ImageError as e:
        return str(e)


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


def request_headers() -> dict:
    """The headers of this session's connection (none under AppTest)."""
    try:
        return dict(st.context.headers)
    except Exception:  # noqa: BLE001  (no connection: a test's script run)
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
            peer = st.context.ip_address  # None for this machine; AppTest's stand-in is no text
            address = client_address(peer if isinstance(peer, str) else None, request_headers(), sharing)
            person = sign_in_with_class_code(sharing, get_store(), code, name, password, address=address)
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
    st.caption(f"Signed in as **{shown(person.name)}**" + (" (teacher)" if person.admin else ""))
    st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out, args=(person, sharing))


# --- state and labels ---

def keep_widget_state(prefix: str = "build_") -> None:
    """Streamlit forgets a widget's value once it is not drawn (another page, a
    hidden layer's slider); writing the values back keeps the stack as it was left."""
    for key in list(st.session_state):
        if key.startswith(prefix):
            st.session_state[key] = st.session_state[key]


def run_label(run) -> str:
    """A run as Markdown shows it (its name escaped: fmnist.text)."""
    return f"#{run.id} {shown(run.name)} ({stack_name(run.spec)})"


def run_choice(run) -> str:
    """A run as plain text, for a selectbox's options, which Streamlit shows as they are."""
    return f"#{run.id} {' '.join(run.name.split())} ({stack_name(run.spec)})"


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
    try:
        st.session_state[ACTIVITY] = drawn if drawn is not None else activity(get_store().list_runs(statuses=ACTIVE))
    except StoreError:
        st.session_state[ACTIVITY] = None  # nothing to compare with: the page showed the fault


def activity_changed(runs) -> bool:
    """In a fragment's refresh: whether other runs are active than the page was drawn for.
    False during a page run, whose own end is what counts (remember_activity)."""
    drawn = st.session_state.get(ACTIVITY)
    return drawn is not None and activity(runs) != drawn


def active_runs(store: RunStore) -> list:
    """Queued and running runs, after marking those whose process died as interrupted."""
    reap_dead_runs(store)
    return store.list_runs(statuses=ACTIVE)


def sidebar_status(page_refreshes_while_active: bool = False) -> None:
    """Which run trains now and what waits, wherever the person is. It refreshes every
    STATUS_EVERY_S while a run is active, every IDLE_STATUS_EVERY_S otherwise; and not at all
    on a page that refreshes itself while a run is active (Build & Train), which then also
    watches for runs starting and ending."""
    st.session_state[ACTIVITY] = None  # set when the page is done (remember_activity)
    try:
        active = active_runs(get_store())
    except StoreError:
        active = []  # the sidebar's own run shows the fault in its place
    quiet = page_refreshes_while_active and bool(active)
    st.session_state[SIDEBAR_QUIET] = quiet
    paused = not quiet and tab_hidden()  # nobody sees a hidden tab's sidebar: no refresh until it shows again
    every = None if quiet or paused else STATUS_EVERY_S if active else IDLE_STATUS_EVERY_S
    st.fragment(sidebar_panel, run_every=every)(quiet, paused)


@store_errors_shown
def sidebar_panel(quiet: bool, paused: bool = False) -> None:
    """The sidebar's refreshing part. While it refreshes (not `quiet`) it listens for the tab
    hiding and showing again (fmnist.tab_visibility); a change reruns the page, which sets the
    refresh again: off while the tab is hidden (`paused`), on with the newest status once shown."""
    watching = not quiet
    if watching and tab_hidden() != paused:
        st.rerun()
    active = active_runs(get_store())  # the active runs only: this runs on every open tab
    if activity_changed(active):
        st.rerun()
    searches = [r for r in active if r.kind == RunKind.SEARCH and r.status == RunStatus.RUNNING]
    running = [r for r in active if r.kind != RunKind.SEARCH and r.status == RunStatus.RUNNING]
    queued = [r for r in active if r.status == RunStatus.QUEUED]
    for search in searches:
        st.markdown(f"**Searching:** #{search.id} {shown(search.name)}")
    if not running:
        st.caption("No run is training.")
    for run in running:
        st.markdown(f"**Training:** {run_label(run)}")
        if not quiet:  # a quiet sidebar's bar would stand still: the page below shows the progress
            st.progress(run.fraction_done(), text=f"epoch {run.epoch}/{run.total_epochs}")
    if queued:
        st.caption(("Queued on the cluster: " if any(r.on_cluster for r in queued) else "Queued: ")
                   + ", ".join(f"#{r.id}" for r in queued))
    if active and not quiet:
        st.page_link(TRAIN_PAGE, label="Watch it live", icon=":material/monitoring:")
    where_runs_train_line(cluster.address() or "")
    watch_tab_visibility(SIDEBAR_VISIBILITY, watch=watching)


def where_runs_train_line(head: str) -> None:
    """Where runs train: this machine, or the Ray cluster with its size and load and a link to Ray's dashboard."""
    text, problem = cluster_status(head)
    if problem:
        st.warning(problem, icon=":material/cloud_off:")
        return
    st.caption(f"Runs train on: {text}")
    if head:
        st.markdown(f"[Ray dashboard]({head})")


@st.cache_data(ttl=10, show_spinner=False)
def cluster_status(head: str) -> tuple[str | None, str | None]:
    """(where runs train, None), or (None, why the cluster cannot be reached); asked of Ray at most
    every ten seconds, however many tabs refresh their sidebars."""
    try:
        return cluster.where_runs_train(), None
    except cluster.ClusterError as e:
        return None, str(e)


def no_public_address_lookup() -> None:
    """Streamlit (1.67, streamlit/net_util.py) asks checkip.amazonaws.com for this machine's public address to
    print an "External URL" and, for a WebSocket from another origin, to compare it with: two blocking HTTP
    requests of up to a second each, again and again where there is no network. The app never wants that
    address: another origin is refused unless it is this machine, browser.serverAddress or
    server.corsAllowedOrigins. `serve --share` sets browser.serverAddress, so the start asks nothing either."""
    from streamlit import net_util

    net_util.get_external_ip = lambda: None


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
    """What the first visit to Classify would do: TensorFlow's import (with fmnist.prediction),
    the dataset, the best run's model loaded and its predict step traced, the model opened up
    for the saliency map, its unusual-picture check calibrated. Into the caches the pages read, so a visit meanwhile waits for it."""
    from fmnist.leaderboard import best_run

    try:
        get_dataset()
        best = best_run(get_store().list_runs())
        if best is None:  # nothing to classify with yet: Classify offers to train, without TensorFlow
            return
        from fmnist.prediction import predict_image

        blank = np.zeros((28, 28), dtype=np.float32)
        predict_image(load_run_model(best.id), blank)
        load_run_inside(best.id).look(blank)
        load_run_outlier_check(best.id)
    except Exception:  # noqa: S110  (a page that needs what failed here shows why)
        pass

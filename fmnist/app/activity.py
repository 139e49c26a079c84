"""What trains now, wherever the person is: the sidebar's run status, refreshed while something is
active, and the bookkeeping that reruns a page when a run starts or ends."""



import streamlit as st

from fmnist import cluster, services
from fmnist.app.caches import get_store, store_errors_shown
from fmnist.app.navigation import TRAIN_PAGE
from fmnist.app.queue_view import own_queue_lines, paused_words
from fmnist.app.session import acting, current_sharing
from fmnist.home import StoreError
from fmnist.models import stack_name
from fmnist.runs import ACTIVE, RunKind, RunStatus
from fmnist.store import RunStore
from fmnist.tab_visibility import tab_hidden, watch_tab_visibility
from fmnist.text import shown
from fmnist.worker import reap_dead_runs

# The sidebar's refresh: every STATUS_EVERY_S while a run is queued or training (its progress),
# every IDLE_STATUS_EVERY_S with nothing active, only to notice a run started elsewhere (another
# tab, the command line): each refresh makes the browser redraw the page's elements, which on a
# page full of charts costs more than the refresh itself (docs/performance.md, "Idle pages and page times").
STATUS_EVERY_S = 2.0


IDLE_STATUS_EVERY_S = 10.0


ACTIVITY = "active_runs_drawn"  # the active runs a page run was drawn for: see remember_activity


PAGE_ACTIVITY = "active_runs_page"  # the same, as the page itself saw them (page_drawn_for)


SIDEBAR_VISIBILITY = "sidebar_visibility"  # its tab_visibility component


SIDEBAR_QUIET = "sidebar_quiet"  # the page refreshes itself while runs are active; the sidebar does not


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
        st.markdown(f"**{'Running' if run.derived else 'Training'}:** {run_label(run)}")
        if not quiet:  # a quiet sidebar's bar would stand still: the page below shows the progress
            st.progress(run.fraction_done(), text=run.progress_text())
    if queued:
        st.caption(("Queued on the cluster: " if any(r.on_cluster for r in queued) else "Queued: ")
                   + ", ".join(f"#{r.id}" for r in queued))
        own_queue_lines(get_store(), queued)
        paused_line(get_store())
    if active and not quiet:
        st.page_link(TRAIN_PAGE, label="Watch it live", icon=":material/monitoring:")
    where_runs_train_line(cluster.address() or "")
    watch_tab_visibility(SIDEBAR_VISIBILITY, watch=watching)


def paused_line(store: RunStore) -> None:
    """While the queue is paused, everyone with runs queued reads so; alone on one's machine (no teacher to
    ask: a store a class paused), a button resumes it. A teacher resumes it on the Class page."""
    if store.queue_paused() is None:
        return
    st.caption(f"{paused_words().capitalize()}: queued runs wait until it is resumed.")
    if not current_sharing().signs_in:
        st.button("Resume the queue", key="sidebar_resume", icon=":material/play_circle:", on_click=resume_alone)


def resume_alone() -> None:
    try:
        services.resume_queue(get_store(), acting())
    except services.REFUSED as e:
        st.toast(str(e))


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

"""What a student sees of the queue and of their teacher's caps: where a queued run stands and about
when it starts (fmnist.queue_eta), on Build & Train and in the sidebar; a run followed where a page
started it (Inside's t-SNE, the Leaderboard's exports); the caps that bound Build & Train's sliders
(fmnist.access.Caps, enforced by fmnist.services)."""


import streamlit as st

from fmnist import services
from fmnist.access import LOCAL_ADMIN, Caps, Person, may_manage
from fmnist.app.caches import get_store, store_errors_shown
from fmnist.app.session import acting, current_person, current_sharing
from fmnist.queue_eta import ordinal
from fmnist.runs import SEARCH_QUEUE, Run, RunStatus
from fmnist.services import queue_standing
from fmnist.store import RunStore
from fmnist.text import shown
from fmnist.worker import reap_dead_runs

FOLLOW_EVERY_S = 1.0  # a followed run's line refreshes this often while it is queued or running


def paused_words() -> str:
    """Who paused the queue, as a student reads it: their teacher in a shared app, else the queue itself."""
    return "the teacher paused the queue" if current_sharing().signs_in else "the queue is paused"


def standing_text(store: RunStore, run: Run, runs: list[Run] | None = None, paused: bool = False) -> str:
    """'3rd in line, about 2 min'; while the queue is paused, '3rd in line' (nothing starts until it resumes)."""
    if paused:
        position = store.queue_position(run.id)
        return "next in line" if position == 1 else f"{ordinal(position)} in line"
    return queue_standing(store, run, runs).text()


def queued_notice(store: RunStore, run: Run) -> None:
    """Build & Train's line for the queued run it shows: 'Queued: 3rd in line, about 2 min.'; while the
    queue is paused, that the teacher paused it."""
    if store.queue_paused() is not None:
        st.info(f"Queued: {standing_text(store, run, paused=True)}, but {paused_words()}: it starts once it is resumed.",
                icon=":material/pause_circle:")
        return
    st.info(f"Queued: {queue_standing(store, run).text()}. It starts when the runs before it end.", icon=":material/schedule:")


def own(person: Person, run: Run) -> bool:
    return (run.owner or LOCAL_ADMIN.id) == person.id


def own_queue_lines(store: RunStore, active: list[Run]) -> None:
    """The sidebar's line for each of this person's queued runs on this machine: 'Your run #7: 3rd in line, about 2 min'."""
    person = current_person()
    mine = [run for run in active if run.status == RunStatus.QUEUED and not run.on_cluster and person and own(person, run)]
    if not mine:
        return
    runs = store.list_runs()
    paused = store.queue_paused() is not None
    for run in mine:
        st.caption(f"Your run #{run.id}: {standing_text(store, run, runs, paused)}" + (f"; {paused_words()}" if paused else ""))


def class_queue(store: RunStore, active: list[Run], paused: bool) -> dict[int, str]:
    """Every queued run on this machine, in the order they start (searches' queue first) -> where it
    stands, for a teacher's view."""
    runs = store.list_runs()
    queued = sorted((run for run in active if run.status == RunStatus.QUEUED and not run.on_cluster),
                    key=lambda run: (run.queue != SEARCH_QUEUE, store.queue_position(run.id)))
    return {run.id: standing_text(store, run, runs, paused) for run in queued}


# --- a run followed in place ---

def follow_run(run_id: int, what: str, key: str) -> None:
    """A queued or running run where the page that started it shows it: where it stands in its queue, then
    its progress, with a Stop for its owner or a teacher; refreshing itself until the run ends, when the
    page runs again to show what the run made (or why it did not). what: the run in words ("Run #5's
    t-SNE"); key: its Stop button's."""
    st.fragment(store_errors_shown(followed_line), run_every=FOLLOW_EVERY_S)(run_id, what, key)


def followed_line(run_id: int, what: str, key: str) -> None:
    store = get_store()
    reap_dead_runs(store)  # a run whose process died reads as interrupted, not as running forever
    run = store.get(run_id)
    if run is None or not run.active:
        st.rerun()  # it ended (or was deleted): the whole page shows how
    bar, stop = st.columns([6, 1], vertical_alignment="center")
    if run.status == RunStatus.QUEUED:
        paused = store.queue_paused() is not None
        bar.progress(0.0, text=f"{what}: queued, {standing_text(store, run, paused=paused)}" + (f"; {paused_words()}" if paused else "") + ".")
    else:
        bar.progress(run.fraction_done(), text=f"{what}: {run.progress_text()}.")
    person = current_person()
    mine = person is not None and may_manage(person, run)
    stop.button("Stop", key=key, icon=":material/stop_circle:", on_click=stop_followed, args=(run.id,), disabled=not mine,
                help="ends it at its next step, keeping nothing of it" if mine else f"started by {shown(run.owner_name or LOCAL_ADMIN.name)}")


def stop_followed(run_id: int) -> None:
    try:
        services.stop(get_store(), acting(), run_id)
    except services.REFUSED as e:
        st.toast(str(e))


# --- the caps on this person's runs ---

def caps_here() -> Caps:
    """The caps on the runs of whoever uses this session: none for a teacher or this machine's own user."""
    person = current_person()
    return Caps() if person is None or person.admin else current_sharing().caps


def clamp_to_caps(caps: Caps, epochs_key: str, images_key: str, all_images: int, minutes_key: str | None = None) -> None:
    """Before the sliders are drawn: a value kept in the session (a preset's, an earlier visit's) beyond
    a cap comes down to it, so that the sliders offer only what a start may use."""
    state = st.session_state
    if caps.max_epochs is not None and state.get(epochs_key, 0) > caps.max_epochs:
        state[epochs_key] = caps.max_epochs
    if caps.max_images is not None and images_key in state and (state[images_key] or all_images) > caps.max_images:
        state[images_key] = caps.max_images
    if caps.max_minutes is not None and minutes_key and state.get(minutes_key, 0) > caps.max_minutes:
        state[minutes_key] = caps.max_minutes


def most_epochs(caps: Caps, most: int) -> int:
    return min(most, caps.max_epochs) if caps.max_epochs is not None else most


def most_minutes(caps: Caps, most: int) -> int:
    return min(most, caps.max_minutes) if caps.max_minutes is not None else most


def image_choices(caps: Caps, sizes: list[int]) -> list[int]:
    """The training-image choices within the cap, the cap itself the largest."""
    if caps.max_images is None or caps.max_images >= max(sizes):
        return sizes
    return sorted({size for size in sizes if size < caps.max_images} | {caps.max_images})


def stopped_at_cap_note(run: Run) -> None:
    """Why a run stopped that nobody stopped: its teacher's cap on minutes."""
    if run.stopped_at_cap:
        st.info(f"Run #{run.id} stopped at your teacher's cap of {run.max_minutes:g} minutes of training; "
                "it kept what it had learnt.", icon=":material/timer_off:")


def caps_caption(caps: Caps) -> None:
    if caps:
        st.caption(f"Your teacher's caps: {caps.describe()}. A start beyond them is refused.")

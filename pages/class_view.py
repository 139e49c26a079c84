"""Class: a teacher's view of a shared app: who is signed in, what runs and waits and whose, pausing and
resuming the queue, stopping any run or all of them, and the class leaderboard as CSV (fmnist.class_view;
every action through fmnist.services, which checks the teacher's right)."""

import pandas as pd
import streamlit as st

from fmnist import class_view, services
from fmnist.app.activity import active_runs, run_choice
from fmnist.app.caches import get_store
from fmnist.app.navigation import enter_through_navigation, teaches
from fmnist.app.queue_view import class_queue
from fmnist.app.session import acting, current_person, current_sharing
from fmnist.text import shown


def act(action, done: str) -> None:
    """Do a teacher's action through the services; its refusal, or what was done, in the page."""
    try:
        result = action()
    except services.REFUSED as e:
        st.error(str(e), icon=":material/block:")
    else:
        st.session_state.class_done = done.format(result=result)
        st.rerun()


def signed_in_section(store) -> None:
    st.subheader("Signed in", anchor=False)
    people = class_view.signed_in_people(store.people.sign_ins())
    if not people:
        st.caption("Nobody is signed in with the class code. (People who sign in with the school's accounts are not listed.)")
        return
    st.dataframe(pd.DataFrame([{"name": p.name, "role": "teacher" if p.teacher else "student", "signed in since": class_view.when(p.since),
                                "tabs": p.tabs} for p in people]), hide_index=True, key="class_people")


def queue_section(store) -> None:
    st.subheader("The queue", anchor=False)
    paused = store.queue_paused()
    if paused:
        st.warning(f"Paused by {shown(paused['by'])} since {class_view.when(paused['since'])}: queued runs keep their places and "
                   "none starts; running runs go on.", icon=":material/pause_circle:")
        if st.button("Resume the queue", type="primary", icon=":material/play_circle:", key="class_resume"):
            act(lambda: services.resume_queue(store, acting()), "The queue runs again: its runs start in the order they had.")
    elif st.button("Pause the queue", icon=":material/pause_circle:", key="class_pause",
                   help="Queued runs keep their places and none starts until you resume it; running runs go on."):
        act(lambda: services.pause_queue(store, acting()), "The queue is paused.")
    active = active_runs(store)
    if not active:
        st.caption("No run is queued or training.")
        return
    rows = class_view.queue_rows(active, class_queue(store, active, paused is not None))
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="class_queue",
                 column_config={"run": st.column_config.NumberColumn(format="#%d")})
    by_id = {run.id: run for run in active}
    one, everything = st.columns(2)
    with one:
        run_id = st.selectbox("A run", list(by_id), format_func=lambda rid: f"{run_choice(by_id[rid])} · {by_id[rid].owner_name or 'this machine'}",
                              key="class_run")
        if st.button("Stop this run", icon=":material/stop_circle:", key="class_stop"):
            act(lambda: services.stop(store, acting(), run_id), f"Run #{run_id}: {{result}}.")
    with everything, st.popover("Stop every run", icon=":material/dangerous:"):
        st.write("The running runs stop at their next batch and keep what they learnt; the queued ones are cancelled.")
        if st.button("Stop them all", type="primary", key="class_stop_all"):
            act(lambda: len(services.stop_all(store, acting())), "Asked {result} runs to stop.")


def leaderboard_section(store) -> None:
    st.subheader("The class leaderboard", anchor=False)
    try:
        csv = services.class_leaderboard_csv(store, acting())
    except services.REFUSED as e:
        st.error(str(e), icon=":material/block:")
        return
    rows = class_view.leaderboard_rows(store.list_runs())
    st.caption(f"Every training, whose it is and how it did, best test accuracy first: {len(rows)} runs.")
    st.download_button("The class leaderboard (.csv)", csv, file_name="class-leaderboard.csv", mime="text/csv",
                       icon=":material/download:", key="class_csv", on_click="ignore")


enter_through_navigation()
store, person = get_store(), current_person()
st.title("Class")
if not teaches(person, current_sharing()):
    st.error("The Class page is a teacher's: sign in with the teacher code to see the class." if current_sharing().signs_in
             else "The Class page is for a teacher of a shared app; alone on your machine there is no class.",
             icon=":material/lock:")
    st.stop()
st.caption("Who is here, what trains and waits and whose, and the class's results.")
if done := st.session_state.pop("class_done", None):
    st.success(done, icon=":material/check_circle:")
signed_in_section(store)
queue_section(store)
leaderboard_section(store)

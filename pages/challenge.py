"""Challenge: a teacher opens a class challenge (or a learner sets themselves one); people submit their
finished trainings; the board ranks them on the public part of the test images until the deadline,
and on the private part after it (fmnist.challenges)."""

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from fmnist import services
from fmnist.app.caches import dataset_or_message, get_store
from fmnist.app.navigation import TRAIN_PAGE, enter_through_navigation
from fmnist.app.session import acting, current_person
from fmnist.challenges import MAX_SUBMISSIONS, MAX_TITLE, PUBLIC_FRACTION, Board, Challenge, Constraints, deadline_text
from fmnist.dataset import FASHION_MNIST
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore
from fmnist.text import shown

PUBLIC_IMAGES = round(FASHION_MNIST.test_size * PUBLIC_FRACTION)
PRIVATE_IMAGES = FASHION_MNIST.test_size - PUBLIC_IMAGES
LIMITS = {"max_params": ("Most parameters", 10000), "max_epochs": ("Most epochs", 1), "max_images": ("Most training images", 1000),
          "max_minutes": ("Most minutes of training", 1)}
SUBMITTABLE = (RunStatus.FINISHED, RunStatus.STOPPED)


def deadline_input() -> float:
    """The deadline, a day and a time in UTC, as seconds since the epoch."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    day, at = st.columns(2)
    date = day.date_input("Deadline (UTC)", value=tomorrow.date(), key="ch_day")
    moment = at.time_input("Time (UTC)", value=tomorrow.time().replace(second=0, microsecond=0), key="ch_time", step=timedelta(minutes=15))
    return datetime.combine(date, moment, tzinfo=UTC).timestamp()


def open_form(store: RunStore) -> None:
    """A teacher's form (or this machine's user's, setting themselves a challenge)."""
    with st.expander("Open a challenge", icon=":material/add_circle:", expanded=not store.challenges.all()):
        title = st.text_input("Title", max_chars=MAX_TITLE, key="ch_title", placeholder="e.g. The best under 100,000 parameters")
        st.caption("Constraints on a submitted run; leave a box empty for no limit.")
        columns = st.columns(len(LIMITS))
        limits = {key: column.number_input(label, min_value=1, value=None, step=step, key=f"ch_{key}", placeholder="no limit")
                  for column, (key, (label, step)) in zip(columns, LIMITS.items(), strict=True)}
        deadline = deadline_input()
        per_person = st.number_input("Submissions per person", min_value=1, max_value=MAX_SUBMISSIONS, value=3, key="ch_per_person")
        if st.button("Open the challenge", type="primary", icon=":material/flag:", key="ch_open"):
            try:
                constraints = Constraints(**{key: None if value is None else int(value) for key, value in limits.items()})
                challenge_id = services.open_challenge(store, acting(), title, constraints, deadline, int(per_person))
            except services.REFUSED as e:
                st.error(str(e), icon=":material/block:")
            else:
                st.session_state.ch_choice = challenge_id
                st.success(f"Opened “{shown(title.strip())}”: it takes submissions until {deadline_text(deadline)}.",
                           icon=":material/flag:")


def describe(challenge: Challenge, now: float) -> str:
    when = f"ended {deadline_text(challenge.ends_at)}" if challenge.ended(now) else f"open until {deadline_text(challenge.ends_at)}"
    return f"{challenge.title} · {when}"


def submit_form(store: RunStore, person, challenge: Challenge) -> None:
    """One of the person's finished trainings, and Submit."""
    mine = store.challenges.submissions(challenge.id, person_id=person.id)
    submitted = {sub.run_id for sub in mine}
    runs = [run for run in reversed(store.list_runs()) if run.kind == RunKind.TRAIN and run.status in SUBMITTABLE
            and (run.owner or "local") == person.id and run.id not in submitted]
    st.markdown(f"**Submit a run** · you have made {len(mine)} of {challenge.submissions_per_person} submissions")
    if not runs:
        st.info("You have no finished training to submit yet: train one within the constraints.", icon=":material/info:")
        st.page_link(TRAIN_PAGE, label="Build & Train", icon=":material/model_training:")
        return
    labels = {}
    for run in runs:
        broken = challenge.constraints.broken_by(run)
        note = f" · breaks: {broken[0].split(';')[0]}" if broken else ""
        labels[run.id] = f"#{run.id} · {run.name} · {run.params:,} parameters{note}"
    run_id = st.selectbox("Your run", list(labels), format_func=labels.get, key="ch_run")
    if st.button("Submit", type="primary", icon=":material/send:", key="ch_submit"):
        dataset = dataset_or_message()
        if dataset is None:
            return
        try:
            submission = services.submit_to_challenge(store, acting(), challenge.id, run_id, dataset.y_test)
        except services.REFUSED as e:
            st.error(str(e), icon=":material/block:")
        else:
            st.success(f"Submitted run #{submission.run_id}: {submission.public_acc:.4f} accuracy on the public part.",
                       icon=":material/check_circle:")


def board_table(board: Board) -> pd.DataFrame:
    rows = []
    for entry in board.entries:
        sub = entry.submission
        row = {"rank": entry.rank, "person": sub.person_name, "run": sub.run_id, "name": sub.run_name, "parameters": sub.params}
        if board.final:
            row["private accuracy"] = sub.private_acc
        row |= {"public accuracy": sub.public_acc, "submissions": entry.submissions}
        rows.append(row)
    return pd.DataFrame(rows)


def show_board(board: Board) -> None:
    if board.final:
        st.subheader("Final ranking")
        st.markdown(f"Ranked on **the private part**: {PRIVATE_IMAGES:,} of the {FASHION_MNIST.test_size:,} test images "
                    f"({1 - PUBLIC_FRACTION:.0%}), whose scores nobody saw before the deadline. Each person's entry is their "
                    f"submission with the best public score; the public part's {PUBLIC_IMAGES:,} images are beside it.")
    else:
        st.subheader("Board: the public part")
        st.markdown(f"Ranked on **the public part**: {PUBLIC_IMAGES:,} of the {FASHION_MNIST.test_size:,} test images "
                    f"({PUBLIC_FRACTION:.0%}), each person's best submission. The other {PRIVATE_IMAGES:,}, the private part, "
                    f"rank the final board: their scores stay hidden until the deadline, {deadline_text(board.challenge.ends_at)}.")
    if not board.entries:
        st.caption("No submissions yet.")
        return
    score = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(board_table(board), hide_index=True, key="ch_board", column_config={
        "run": st.column_config.NumberColumn(format="#%d"), "parameters": st.column_config.NumberColumn(format="localized"),
        "private accuracy": score, "public accuracy": score})


def own_submissions(store: RunStore, person, challenge: Challenge, now: float) -> None:
    """The person's own submissions with their public scores (and private ones once it ended): which one is their entry."""
    mine = store.challenges.submissions(challenge.id, now, person_id=person.id)
    if not mine:
        return
    with st.expander(f"Your submissions ({len(mine)})", icon=":material/history:"):
        table = pd.DataFrame([{"run": sub.run_id, "name": sub.run_name, "public accuracy": sub.public_acc,
                               **({"private accuracy": sub.private_acc} if challenge.ended(now) else {}),
                               "submitted": deadline_text(sub.submitted_at)} for sub in mine])
        st.dataframe(table, hide_index=True, column_config={"run": st.column_config.NumberColumn(format="#%d")})
        st.caption("Your entry on the board is the one with the best public score.")


def manage(store: RunStore, person, challenge: Challenge, now: float) -> None:
    """Close or delete: for who opened it, and teachers."""
    if not (person.admin or person.id == challenge.opened_by):
        return
    close, delete = st.columns(2)
    if not challenge.ended(now) and close.button("Close it now", icon=":material/lock:", key="ch_close",
                                                 help="No more submissions; the final ranking is revealed."):
        act(lambda: services.close_challenge(store, acting(), challenge.id))
    if delete.button("Delete the challenge", icon=":material/delete:", key="ch_delete", help="Its submissions go with it; the runs stay."):
        act(lambda: services.delete_challenge(store, acting(), challenge.id))


def act(action) -> None:
    try:
        action()
    except services.REFUSED as e:
        st.error(str(e), icon=":material/block:")
    else:
        st.rerun()


enter_through_navigation()
store, person = get_store(), current_person()
st.title("Challenge")
st.caption("A goal under constraints, a deadline, and a board nobody can game: runs are ranked on a part of the test images "
           "whose scores stay hidden until the deadline.")
if person.admin:
    open_form(store)
now = time.time()
challenges = store.challenges.all()
if not challenges:
    st.info("No challenge yet." + (" Open one above: set yourself a goal." if person.admin else " Your teacher opens one."),
            icon=":material/info:")
    st.stop()
by_id = {challenge.id: challenge for challenge in challenges}
if st.session_state.get("ch_choice") not in by_id:
    st.session_state.ch_choice = next((c.id for c in challenges if not c.ended(now)), challenges[0].id)
chosen = by_id[st.selectbox("Challenge", list(by_id), format_func=lambda cid: describe(by_id[cid], now), key="ch_choice")]
st.header(shown(chosen.title), anchor=False)
st.caption(f"Opened by {shown(chosen.opened_by_name)} · {chosen.constraints.describe()} · "
           f"{chosen.submissions_per_person} submission{'s' if chosen.submissions_per_person != 1 else ''} per person · "
           + (f"ended {deadline_text(chosen.ends_at)}" if chosen.ended(now) else f"deadline {deadline_text(chosen.ends_at)}"))
if not chosen.ended(now):
    submit_form(store, person, chosen)
show_board(store.challenges.board(chosen.id, now))
own_submissions(store, person, chosen, now)
manage(store, person, chosen, now)

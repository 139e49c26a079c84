"""The coach on Build & Train: what a run's curves say (fmnist.coach), each finding with its evidence,
one next step and, where it names a change, *Try it*, which fills the page's controls with it."""

from dataclasses import replace

import streamlit as st

from fmnist.app.stack_links import run_stack, try_change
from fmnist.coach import CoachError, advise, changed_spec
from fmnist.models import SpecError
from fmnist.runs import Run, RunKind, RunStatus
from fmnist.tab_visibility import tab_hidden

COACH_EVERY_S = 5.0  # while a run trains, its findings are read again this often (an epoch takes seconds at the least)


def coach_findings(store, run: Run) -> None:
    """The findings of a run of one model: once it has ended, as they stand; while it trains, from its
    curves so far, read again every COACH_EVERY_S (not while the browser tab is hidden)."""
    if run.kind not in (RunKind.TRAIN, RunKind.TRIAL):
        return
    if run.status == RunStatus.RUNNING:
        st.fragment(findings_so_far, run_every=None if tab_hidden() else COACH_EVERY_S)(store, run.id)
    elif not run.active:
        draw_findings(store, run)


def findings_so_far(store, run_id: int) -> None:
    run = store.get(run_id)
    if run is not None and run.active:  # once it ends the page draws itself again, and the findings as they stand
        draw_findings(store, run)


def draw_findings(store, run: Run) -> None:
    epochs = store.epochs(run.id)
    if not epochs:  # nothing to read yet
        return
    try:
        findings = advise(run, epochs, store.list_runs() if run.status == RunStatus.FINISHED else ())
    except CoachError:
        return
    st.markdown("##### What the curves say" + (" so far" if run.active else ""))
    if not findings:
        st.caption(f"Nothing stands out in these curves{' yet' if run.active else ''}: no overfitting, underfitting, unsteady "
                   "loss or unfinished learning by the coach's measures (docs/guide.md, \"The coach\").")
    for finding in findings:
        with st.container(border=True):
            st.markdown(f"**{finding.title}**: {finding.evidence}.  \nNext: {finding.next_step}.")
            if finding.change:
                try_button(run, finding)


def try_button(run: Run, finding) -> None:
    try:
        stack = replace(run_stack(run), spec=changed_spec(run.spec, finding.change))
    except SpecError:  # a change this version cannot build: the next step stays in words
        return
    if st.button("Try it", key=f"coach_try_{run.id}_{finding.kind}", icon=":material/science:",
                 help="fills Build & Train's settings with this run's and the change; nothing trains until you press Start training"):
        try_change(run, stack, f"the coach's next step ({finding.next_step})")

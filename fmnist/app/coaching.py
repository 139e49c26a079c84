"""The coach on Build & Train: what a run's curves say (fmnist.coach), each finding with its evidence,
one next step and, where it names a change, *Try it*, which fills the page's controls with it."""

from dataclasses import replace

import streamlit as st

from fmnist.app.stack_links import run_stack, try_change
from fmnist.coach import CoachError, advise, changed_spec
from fmnist.models import SpecError
from fmnist.runs import Run, RunKind, RunStatus


def coach_findings(store, run: Run) -> None:
    """The findings of an ended run (a run still training has only some of its curves)."""
    if run.active or run.kind not in (RunKind.TRAIN, RunKind.TRIAL):
        return
    try:
        findings = advise(run, store.epochs(run.id), store.list_runs() if run.status == RunStatus.FINISHED else ())
    except CoachError:
        return
    st.markdown("##### What the curves say")
    if not findings:
        st.caption("Nothing stands out in these curves: no overfitting, underfitting, unsteady loss or unfinished learning "
                   "by the coach's measures (docs/guide.md, \"The coach\").")
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

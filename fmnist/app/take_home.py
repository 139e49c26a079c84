"""A run's code to take home (fmnist.run_code): the script and the notebook as downloads, or why there is none."""

from functools import partial

import streamlit as st

from fmnist.run_code import CodeError, check_expressible, code_of
from fmnist.runs import Run


def code_downloads(store, run: Run, key: str) -> None:
    """*Code (.py)* and *Notebook (.ipynb)*: a standalone Keras script of the run; a run still
    training, without a model or not one model gets the reason instead. `key` tells the page's copies apart."""
    try:
        check_expressible(run, run.id)
    except CodeError as e:
        st.caption(str(e))
        return
    with st.container(horizontal=True):
        # Callables: the text is written when the button is pressed, not on every page run.
        st.download_button("Code (.py)", partial(code_of, store, run.id), file_name=f"run-{run.id}.py", mime="text/x-python",
                           icon=":material/code:", key=f"{key}_code_{run.id}", on_click="ignore",
                           help="a standalone script in plain Keras and numpy that trains this run's model and prints its test accuracy")
        st.download_button("Notebook (.ipynb)", partial(code_of, store, run.id, as_notebook=True), file_name=f"run-{run.id}.ipynb",
                           mime="application/x-ipynb+json", icon=":material/description:", key=f"{key}_notebook_{run.id}", on_click="ignore",
                           help="the same code as a Jupyter notebook, a cell a step")

"""Fashion-MNIST Studio: `streamlit run streamlit_app.py`."""

import streamlit as st

from fmnist.access import SharingConfigError
from fmnist.home import StoreError
from fmnist.ui import ENTERED, current_person, gate, keep_widget_state, person_line, show_store_error, sidebar_status

st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")
st.session_state[ENTERED] = True
try:
    signed_in = current_person() is not None
except (StoreError, SharingConfigError):
    signed_in = False  # gate() below says why
pages = st.navigation([
    st.Page("pages/train.py", title="Build & Train", icon=":material/model_training:", default=True),
    st.Page("pages/search.py", title="Search", icon=":material/travel_explore:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/draw:"),
    st.Page("pages/inside.py", title="Inside", icon=":material/neurology:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
], position="sidebar" if signed_in else "hidden")
sharing, person = gate()  # the store opens, sharing is configured, someone signed in: else it stops here
keep_widget_state()
with st.sidebar:
    person_line(person, sharing)
    sidebar_status()
try:
    pages.run()
except StoreError as e:  # the store failed while the page used it (a disk that filled, a file replaced)
    show_store_error(e)

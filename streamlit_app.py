"""Fashion-MNIST Studio: `streamlit run streamlit_app.py`."""

import streamlit as st

from fmnist.home import StoreError
from fmnist.ui import ENTERED, get_store, keep_widget_state, show_store_error, sidebar_status

st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")

pages = st.navigation([
    st.Page("pages/train.py", title="Build & Train", icon=":material/model_training:", default=True),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/draw:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
])
keep_widget_state()
st.session_state[ENTERED] = True
try:
    get_store()  # a store that cannot be opened: one message on every page, nothing touched
except StoreError as e:
    show_store_error(e)
    st.stop()
with st.sidebar:
    sidebar_status()
try:
    pages.run()
except StoreError as e:  # the store failed while the page used it (a disk that filled, a file replaced)
    show_store_error(e)

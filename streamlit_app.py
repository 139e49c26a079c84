"""Fashion-MNIST Studio: `streamlit run streamlit_app.py`."""

import streamlit as st

from fmnist.ui import ENTERED, keep_keras_between_runs, keep_widget_state, sidebar_status

keep_keras_between_runs()
st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")

pages = st.navigation([
    st.Page("pages/train.py", title="Build & Train", icon=":material/model_training:", default=True),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/draw:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
])
keep_widget_state()
with st.sidebar:
    sidebar_status()
st.session_state[ENTERED] = True
pages.run()

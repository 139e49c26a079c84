"""Fashion-MNIST Studio: `streamlit run streamlit_app.py`."""

import streamlit as st

from fmnist.ui import (
    ENTERED, keep_keras_between_runs, keep_widget_state, remember_activity, sidebar_status, warm_up_in_background,
)

keep_keras_between_runs()
st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")

train = st.Page("pages/train.py", title="Build & Train", icon=":material/model_training:", default=True)
pages = st.navigation([
    train,
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/draw:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
])
keep_widget_state()
with st.sidebar:
    # Build & Train's live panel refreshes itself while a run is active: the sidebar need not.
    sidebar_status(page_refreshes_while_active=pages.url_path == train.url_path)
st.session_state[ENTERED] = True
try:
    pages.run()
finally:
    # However the page ended (st.stop, st.rerun): what it now shows, and, once per server after
    # the first page, TensorFlow warmed up in the background.
    remember_activity()
    warm_up_in_background()

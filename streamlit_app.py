"""Fashion-MNIST Studio: `streamlit run streamlit_app.py`."""

import streamlit as st

from fmnist.access import SharingConfigError
from fmnist.accessibility import page_styles
from fmnist.app.activity import remember_activity, sidebar_status
from fmnist.app.caches import show_store_error
from fmnist.app.navigation import CHALLENGE_PAGE, CLASS_PAGE, ENTERED, keep_widget_state, teaches
from fmnist.app.server import keep_keras_between_runs, no_public_address_lookup, warm_up_in_background
from fmnist.app.session import current_person, current_sharing, gate, person_line
from fmnist.home import StoreError

keep_keras_between_runs()
no_public_address_lookup()
st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")
st.session_state[ENTERED] = True
page_styles()
try:
    sharing_now = current_sharing()
    someone = current_person(sharing_now)
except (StoreError, SharingConfigError):
    sharing_now = someone = None  # gate() below says why
signed_in = someone is not None
train = st.Page("pages/train.py", title="Build & Train", icon=":material/model_training:", default=True)
pages = st.navigation([
    train,
    st.Page("pages/search.py", title="Search", icon=":material/travel_explore:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page(CHALLENGE_PAGE, title="Challenge", icon=":material/emoji_events:"),
    # A teacher's view; in the navigation for teachers only, and the page itself refuses anyone else.
    st.Page(CLASS_PAGE, title="Class", icon=":material/groups:", visibility="visible" if teaches(someone, sharing_now) else "hidden"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/draw:"),
    st.Page("pages/inside.py", title="Inside", icon=":material/neurology:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
], position="sidebar" if signed_in else "hidden")
sharing, person = gate()  # the store opens, sharing is configured, someone signed in: else it stops here
keep_widget_state()
with st.sidebar:
    person_line(person, sharing)
    # Build & Train's live panel refreshes itself while a run is active: the sidebar need not.
    sidebar_status(page_refreshes_while_active=pages.url_path == train.url_path)
try:
    pages.run()
except StoreError as e:  # the store failed while the page used it (a disk that filled, a file replaced)
    show_store_error(e)
finally:
    # However the page ended (st.stop, st.rerun): what it now shows, and, once per server after
    # the first page, TensorFlow warmed up in the background.
    remember_activity()
    warm_up_in_background()

"""Where a page is: the app's entry through st.navigation, the pages other pages link to, and the
widget state a page keeps when another is shown."""



import streamlit as st

from fmnist.app.session import gate

ENTERED = "entered_through_navigation"  # set by streamlit_app.py


TRAIN_PAGE = "pages/train.py"


LEADERBOARD_PAGE = "pages/leaderboard.py"


SEARCH_PAGE = "pages/search.py"


INSIDE_PAGE = "pages/inside.py"


CHALLENGE_PAGE = "pages/challenge.py"


CLASS_PAGE = "pages/class_view.py"


def teaches(person, sharing) -> bool:
    """Whether the Class page is for this person: a teacher of a shared app. Alone on one's machine there is
    no class (and the local admin's one queue is managed on Build & Train and in the sidebar)."""
    return person is not None and person.admin and sharing is not None and sharing.signs_in


# What another page asks the Inside page to open: {"run": id, "index": test image} or {"run": id, "classify": True}.
# Not a widget's key: Streamlit forgets those of a page that is not shown.
INSIDE_REQUEST = "inside_request"


def enter_through_navigation() -> None:
    """Call first thing in every page. Because the app has a pages/ folder, Streamlit 1.67 runs a
    page file on its own (its older multipage mode) until st.navigation has run once in the
    server, so the first visitor to open, say, /leaderboard directly would get a bare page list
    without the app's layout. Streamlit decides that mode from the folder's existence alone and
    offers no setting for it (streamlit/runtime/pages_manager.py), so leave the mode as
    st.navigation itself does, and rerun: the rerun goes through streamlit_app.py and lands on
    the same page. (A session that already came through streamlit_app.py, as AppTest's do,
    keeps its run and the click that started it.) tests/test_browser_direct_url.py guards it."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and ENTERED not in st.session_state:
        PagesManager.uses_pages_directory = False
        st.rerun()
    gate()  # and whichever way a page is reached, nobody uses it without signing in


def keep_widget_state(prefix: str = "build_") -> None:
    """Streamlit forgets a widget's value once it is not drawn (another page, a
    hidden layer's slider); writing the values back keeps the stack as it was left."""
    for key in list(st.session_state):
        if key.startswith(prefix):
            st.session_state[key] = st.session_state[key]


def no_runs_yet(message: str) -> None:
    """A page that needs a trained run, with none to show: why, and the way to Build & Train."""
    st.info(message, icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Build & Train", icon=":material/model_training:")

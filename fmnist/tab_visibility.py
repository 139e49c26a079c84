"""Whether the browser tab is hidden (another tab in front, the window minimised), as the browser says.

A page that refreshes on its own (the sidebar's run status, Build & Train's live panel) costs the
server a script run each time, on every open tab (docs/performance.md, "A hidden tab"): a hidden tab's
refresh is work nobody sees. The browser tells a page when it hides and shows again
(`visibilitychange`); a component that listens reports it here, the refresh pauses while the tab is
hidden, and the page reruns at once when it shows again, with what changed meanwhile.

TAB_HIDDEN is UI state of this session (one session is one tab). It is reported only when the tab's
state differs from what the page was drawn for, also when the component first shows: a stale flag
is put right at once, and the rerun it causes reports nothing again.
"""

from functools import partial

import streamlit as st

TAB_HIDDEN = "tab_hidden"

# An invisible element: the script alone, which listens while the page asks it to.
JS = """
export default function ({ data, parentElement, setTriggerValue }) {
  const root = parentElement.querySelector(".fmnist-visibility");
  const state = root.visibilityState || (root.visibilityState = {});
  state.data = data;
  state.setTriggerValue = setTriggerValue;
  if (!state.onVisibility) {
    state.onVisibility = () => {
      const visibility = state.data;
      if (visibility && visibility.watch && document.hidden !== visibility.hidden) {
        state.setTriggerValue("visibility", document.hidden ? "hidden" : "visible");
      }
    };
    document.addEventListener("visibilitychange", state.onVisibility);
  }
  state.onVisibility();  // the tab may have changed while this data was on its way
  return () => {
    document.removeEventListener("visibilitychange", state.onVisibility);
    delete root.visibilityState;
  };
}
"""

tab_visibility_component = st.components.v2.component(
    "fmnist.tab_visibility", html='<span class="fmnist-visibility"></span>', js=JS)


def tab_hidden() -> bool:
    return st.session_state.get(TAB_HIDDEN, False)


def remember_visibility(key: str) -> None:
    """A component's `visibility` trigger: 'hidden' or 'visible'."""
    seen = st.session_state[key].get("visibility")
    if seen in ("hidden", "visible"):
        st.session_state[TAB_HIDDEN] = seen == "hidden"


def visibility_data(watch: bool) -> dict:
    """What a listening component is sent: whether to listen, and what the page was drawn for."""
    return {"watch": watch, "hidden": watch and tab_hidden()}


def watch_tab_visibility(key: str, watch: bool = True) -> None:
    """Listen (while `watch`) for the tab hiding or showing again; a change reruns the fragment or
    page this is drawn in, with tab_hidden() telling which it is now."""
    tab_visibility_component(data=visibility_data(watch), key=key, height=0,
                             on_visibility_change=partial(remember_visibility, key))

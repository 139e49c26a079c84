"""Where Streamlit's own elements fall short of WCAG 2.1 AA and the theme cannot put it right
(docs/accessibility.md, "Workarounds"): a style sheet every page loads, and a name and a keyboard
stop for the drawing canvas' scroll box.

Text colours are set in .streamlit/config.toml. What is left: Streamlit draws a slider's value and
a selected segment's text in the primary colour on the page's background, and white text on the
primary colour (a primary button, a multiselect's chips). No violet reaches 4.5:1 both on the
dark theme's background and under white text, so those two texts take the body text's colour
instead, in either theme."""

import streamlit as st

STYLES = """<style>
[data-testid="stSlider"] [data-testid="stSliderThumbValue"],
[data-testid="stButtonGroup"] button[data-selected]:not([data-disabled]),
[data-testid="stButtonGroup"] button[data-selected]:not([data-disabled]) * { color: inherit; }
</style>"""

# streamlit-drawable-canvas draws into a scroll box (it scrolls when its column is narrower than the
# canvas) that a keyboard cannot reach and nothing names; its shadow DOM is open, so the page
# gives it both. It polls: the canvas may draw after this element, and again after a rerun.
CANVAS_JS = """
export default function ({ data }) {
  const mark = () => {
    for (const host of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
      const box = host.shadowRoot && host.shadowRoot.querySelector(".dc-scroll");
      if (box && box.getAttribute("aria-label") !== data.label) {
        box.tabIndex = 0;
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", data.label);
      }
    }
  };
  mark();
  const timer = setInterval(mark, 1000);
  return () => clearInterval(timer);
}
"""

canvas_names = st.components.v2.component("fmnist.canvas_names", html="<span></span>", js=CANVAS_JS)


def page_styles() -> None:
    """The style sheet; it takes no room on the page (Streamlit puts a style-only element aside)."""
    st.html(STYLES)


def name_drawing_canvas(label: str) -> None:
    """Give the page's drawing canvas an accessible name and a place in the tab order."""
    canvas_names(data={"label": label}, key="canvas_names", height=0)


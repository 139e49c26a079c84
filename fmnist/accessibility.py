"""Where Streamlit's own elements fall short of WCAG 2.1 AA and the theme cannot put it right
(docs/accessibility.md, "Workarounds for Streamlit's own elements"): a style sheet every page loads, and a name and a keyboard
stop for the drawing canvas' scroll box.

Text colours are set in .streamlit/config.toml. What is left: Streamlit draws a slider's value and
a selected segment's text in the primary colour on the page's background, and white text on the
primary colour (a primary button, a multiselect's chips). No violet reaches 4.5:1 both on the
dark theme's background and under white text, so those two texts take the body text's colour
instead, in either theme."""

import html
import time

import streamlit as st

STYLES = """<style>
[data-testid="stSlider"] [data-testid="stSliderThumbValue"],
[data-testid="stButtonGroup"] button[data-selected]:not([data-disabled]),
[data-testid="stButtonGroup"] button[data-selected]:not([data-disabled]) * { color: inherit; }
[data-testid="stMarkdownContainer"] div[role="status"][aria-live="polite"] {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
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


# The live panel's announcement for screen readers: a sentence per epoch at most every few seconds
# (a sentence per batch would talk over everything else), and one when the run ends.
ANNOUNCE_EVERY_S = 5.0
ANNOUNCED = "live_announced"  # session state: (run id, sentence, when it was first shown)


def progress_sentence(epochs: list[dict], total_epochs: int) -> str | None:
    """'Epoch 7 of 10, validation accuracy 0.884, best 0.887 at epoch 6' (training accuracy without a
    validation split); None before the first epoch ends."""
    for key, what in (("val_accuracy", "validation accuracy"), ("accuracy", "training accuracy")):
        rows = [row for row in epochs if row.get(key) is not None]
        if rows:
            best = max(rows, key=lambda row: row[key])
            return f"Epoch {rows[-1]['epoch']} of {total_epochs}, {what} {rows[-1][key]:.3f}, best {best[key]:.3f} at epoch {best['epoch']}."
    return None


def final_sentence(run) -> str:
    sentence = f"Run #{run.id} {run.status}"
    if run.test_acc is not None:
        sentence += f": {run.test_acc:.1%} of the test images right"
    return sentence + "."


def announcement(run, epochs_of, now: float, state) -> str:
    """What the region says now: the final sentence once the run has ended; while it trains, the
    sentence last shown until ANNOUNCE_EVERY_S have passed, then the newest epoch's (epochs_of()
    reads them, only then). `state`: where the last one is kept (the session's state)."""
    shown = state.get(ANNOUNCED)
    if not run.active:
        sentence = final_sentence(run)
    elif shown and shown[0] == run.id and now - shown[2] < ANNOUNCE_EVERY_S:
        sentence = shown[1]
    else:
        sentence = progress_sentence(epochs_of(), run.total_epochs) or f"Run #{run.id} {run.status}."
    if not shown or shown[:2] != (run.id, sentence):
        state[ANNOUNCED] = (run.id, sentence, now)
    return sentence


def live_announcement(run, epochs_of) -> None:
    """A polite live region (role status) holding announcement(): screen readers read it out when it changes."""
    sentence = announcement(run, epochs_of, time.monotonic(), st.session_state)
    # Read by screen readers, not drawn (STYLES hides it: Streamlit drops a style attribute): the
    # progress line and the chart show the same.
    st.markdown(f'<div role="status" aria-live="polite">{html.escape(sentence)}</div>', unsafe_allow_html=True)

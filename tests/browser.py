"""The browser tests' own helpers (screenshots, moving a slider as a person does), and the Streamlit
server and Chromium set-up they share with the benches (benchmarks/browser.py), under the names the
tests import."""

from benchmarks.browser import (  # noqa: F401  (re-exported: the tests import them from here)
    CHROMIUM,
    CHROMIUM_ARGS,
    app_idle,
    free_port,
    set_tab_hidden,
    start_streamlit,
)

from helpers import ROOT

SCREENSHOTS = ROOT / "test-output"


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def set_slider(page, label: str, value: str) -> None:
    """Move a Streamlit slider with the keyboard as a person would: Home, then the right arrow until
    the slider shows `value`. A numeric slider's step is read from one press, and the presses that
    remain are made at once, as a person holding the key (the slider sends the value it stops at);
    then one press at a time, looking after each rerun, until it shows `value`."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label)
    shown = slider.get_by_test_id("stSliderThumbValue")
    thumb = slider.get_by_role("slider")
    thumb.press("Home")
    page.wait_for_timeout(250)
    app_idle(page)
    first = shown.inner_text()
    if first != value:
        thumb.press("ArrowRight")
        page.wait_for_timeout(250)
        app_idle(page)
        try:
            start, second, target = (float(text.replace(",", "")) for text in (first, shown.inner_text(), value))
        except ValueError:
            start = second = target = 0.0  # not a number: one press at a time
        if second > start and target > second:
            for _ in range(round((target - second) / (second - start))):
                thumb.press("ArrowRight")
    for _ in range(100):
        page.wait_for_timeout(250)
        app_idle(page)  # the rerun a key press started is over: what the slider shows is settled
        now = shown.inner_text()
        if now == value:
            return
        try:
            past = float(now.replace(",", "")) > float(value.replace(",", ""))
        except ValueError:
            past = False
        thumb.press("ArrowLeft" if past else "ArrowRight")
    raise AssertionError(f"slider {label!r} never showed {value!r} (it shows {shown.inner_text()!r})")

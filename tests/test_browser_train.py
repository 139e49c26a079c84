"""Build & Train in a real browser: Debian's Chromium against `streamlit run` on 127.0.0.1."""

import re
from dataclasses import replace

import pytest

from fmnist.models import PRESETS, count_params, stack_name
from fmnist.store import RunStore

from browser import CHROMIUM, free_port, screenshot, set_slider, start_streamlit
from helpers import wait_until

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser") / "home"
    port = free_port()
    # TensorFlow: 40 epochs of 128-64 then take long enough to press Stop (JAX could finish first).
    process = start_streamlit(home, port, env={"FMNIST_BACKEND": "tensorflow"})
    yield f"http://127.0.0.1:{port}", home
    for run in RunStore(home).list_runs(statuses=("queued", "running")):
        RunStore(home).request_stop(run.id)
    process.terminate()
    process.wait(timeout=20)


def live_points(page) -> int:
    """Points of the per-batch training loss line in the live chart."""
    return page.evaluate(
        """() => {
            const plot = document.querySelector('.st-key-live_curves .js-plotly-plot');
            if (!plot || !plot._fullData) return 0;  // _fullData: the arrays as Plotly decoded and drew them
            return plot._fullData.filter(t => t.name === 'train (per batch)').reduce((n, t) => n + t.x.length, 0);
        }"""
    )


def open_app(browser, url):
    """A new browser session (its own cookies and Streamlit session) on the app."""
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.goto(url)
    page.get_by_role("heading", name="Build & Train").wait_for(timeout=30000)
    return page


def test_build_train_live_stop_and_a_second_tab(server, browser):
    url, home = server
    page = open_app(browser, url)

    set_slider(page, "Hidden layers", "1")
    page.get_by_text("Layer 2 width").wait_for(state="detached")
    set_slider(page, "Hidden layers", "2")
    page.get_by_text("Layer 2 width").wait_for()
    set_slider(page, "Training images", "20000")
    set_slider(page, "Epochs", "40")  # long enough to watch and stop
    page.get_by_test_id("stMetric").filter(has_text="109,386").wait_for()  # 128-64, as the person sees it
    page.get_by_role("button", name="Start training", exact=True).click()

    page.get_by_text("· running").wait_for(timeout=60000)
    first = wait_until(lambda: live_points(page), timeout=60, message="live points in the browser")
    wait_until(lambda: live_points(page) > first, timeout=30, message="the live curve to gain points")
    screenshot(page, "train-live")

    second_tab = open_app(browser, url)
    second_tab.get_by_text("· running").wait_for(timeout=30000)
    seen = wait_until(lambda: live_points(second_tab), timeout=30, message="live points in the second tab")
    wait_until(lambda: live_points(second_tab) > seen, timeout=30, message="the second tab's curve to gain points")
    screenshot(second_tab, "train-live-second-tab")

    [run] = RunStore(home).list_runs()
    assert run.status == "running" and [layer.units for layer in run.spec.layers] == [128, 64]
    assert run.train_limit == 20000 and run.spec.epochs == 40

    # In the page, not the header's own "Stop" that Streamlit shows while a rerun is slow.
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("· stopped").wait_for(timeout=30000)
    page.get_by_text("Test accuracy").wait_for(timeout=30000)
    screenshot(page, "train-stopped")
    run = RunStore(home).get(run.id)
    assert run.status == "stopped" and run.epoch < 40 and run.test_acc > 0.5
    second_tab.get_by_text("· stopped").wait_for(timeout=30000)


def test_pick_small_cnn_train_it_and_find_it_on_the_leaderboard(server, browser):
    """A new user's path through issue 7: the Small CNN preset, trained (here on 1,000 images
    for one epoch), then its row on the leaderboard."""
    url, home = server
    page = open_app(browser, url)
    small_cnn = PRESETS["Small CNN"]

    page.get_by_test_id("stSelectbox").filter(has_text="Preset").click()
    page.get_by_role("option", name=re.compile("^Small CNN")).click()
    page.get_by_test_id("stMetric").filter(has_text=f"{count_params(small_cnn):,}").wait_for()
    page.get_by_text("Block 2 filters").wait_for()
    set_slider(page, "Training images", "1000")
    set_slider(page, "Epochs", "1")
    page.get_by_label("Run name (optional)").fill("my first cnn")
    page.get_by_label("Run name (optional)").press("Enter")
    page.get_by_role("button", name="Start training", exact=True).click()
    page.get_by_text("· finished").wait_for(timeout=120000)
    screenshot(page, "train-small-cnn")

    [run] = [run for run in RunStore(home).list_runs() if run.name == "my first cnn"]
    assert run.status == "finished" and run.spec == replace(small_cnn, epochs=1)
    assert run.train_limit == 1000 and run.params == count_params(small_cnn)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Leaderboard").click()
    table = page.locator(".st-key-lb_table")
    table.locator("tbody tr td").get_by_text("my first cnn", exact=True).wait_for(state="attached", timeout=30000)
    table.locator("tbody tr td").get_by_text(stack_name(small_cnn), exact=True).wait_for(state="attached")
    screenshot(page, "leaderboard-small-cnn")

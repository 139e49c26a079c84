"""The Search page in a real browser: start a small search, watch its trials arrive live and the
parallel-coordinates chart draw, stop it, and train the best trial for real."""

import os

import pytest

from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore

from browser import CHROMIUM, free_port, screenshot, start_streamlit
from helpers import wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-search") / "home"
    port = free_port()
    process = start_streamlit(home, port)
    yield f"http://127.0.0.1:{port}", RunStore(home)
    for run in RunStore(home).list_runs(statuses=(RunStatus.QUEUED, RunStatus.RUNNING)):
        RunStore(home).request_stop(run.id)
    process.terminate()
    process.wait(timeout=20)


def plot_traces(page, key: str) -> int:
    return page.evaluate(
        """(key) => {
            const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return plot && plot._fullData ? plot._fullData.length : 0;
        }""",
        key,
    )


def test_search_live_stop_and_train_the_best(server, browser):
    url, store = server
    page = browser.new_context(viewport={"width": 1500, "height": 2400}).new_page()
    page.goto(f"{url}/search")
    page.get_by_role("heading", name="Search", exact=True).wait_for(timeout=60000)

    # A quick space: 2,000 images and one epoch a trial, at most four trials.
    images = page.get_by_test_id("stSlider").filter(has_text="Training images").get_by_role("slider")
    images.press("Home")
    page.get_by_test_id("stSlider").filter(has_text="Training images").get_by_test_id("stSliderThumbValue").filter(
        has_text="2000").wait_for()
    epochs = page.get_by_test_id("stSlider").filter(has_text="Epochs per trial").get_by_role("slider")
    epochs.press("Home")
    page.get_by_test_id("stSlider").filter(has_text="Epochs per trial").get_by_test_id("stSliderThumbValue").filter(
        has_text="1").wait_for()
    trials = page.get_by_label("Trials (at most)")
    trials.fill("6")
    trials.press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Start search").click()

    search = wait_until(lambda: next((r for r in store.list_runs() if r.kind == RunKind.SEARCH), None), timeout=30,
                        message="the search to be created")
    assert (search.space["images"], search.space["epochs"], search.space["trials"]) == (2000, 1, 6)
    # Trials arrive live, and once two have finished, the parallel coordinates draw.
    wait_until(lambda: sum(r.status == RunStatus.FINISHED for r in store.children(search.id)) >= 3, timeout=240,
               message="three finished trials")
    wait_until(lambda: plot_traces(page, "search_parallel") >= 1, timeout=60, message="the parallel-coordinates chart")
    wait_until(lambda: plot_traces(page, "search_curves") >= 3, timeout=30, message="three validation curves")
    screenshot(page, "search-live")

    page.get_by_role("button", name="Stop search").click()
    wait_until(lambda: not store.get(search.id).active, timeout=120, message="the search to stop")
    assert store.get(search.id).status in (RunStatus.STOPPED, RunStatus.FINISHED)
    page.get_by_role("button", name="Resume").wait_for(timeout=30000)

    page.get_by_role("button", name="Train the best").click()
    page.get_by_text("trains the best settings on all training images").wait_for(timeout=30000)
    best = [r for r in store.list_runs() if r.name == f"best of search #{search.id}"]
    assert len(best) == 1 and best[0].kind == RunKind.TRAIN and best[0].train_limit is None and best[0].spec.epochs == 20
    winner = max((r for r in store.children(search.id) if r.status == RunStatus.FINISHED), key=lambda r: r.best_val_acc)
    assert best[0].spec.layers == winner.spec.layers and best[0].spec.learning_rate == winner.spec.learning_rate
    store.request_stop(best[0].id)

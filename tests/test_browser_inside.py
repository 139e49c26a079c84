"""Inside in a real browser: open the projection of the test images, click one point, and see that
image's activations layer by layer."""

import numpy as np
import pytest
from playwright.sync_api import expect
from test_browser_leaderboard import go_to
from test_browser_train import open_app

from fmnist.inside import Inside, run_pca
from fmnist.leaderboard import best_run, training_runs
from fmnist.prediction import load_model

from browser import CHROMIUM, screenshot
from helpers import wait_until

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")


@pytest.fixture(scope="module")
def server(served_store):
    """The shared server (conftest.served_store); Inside opens on its best run, as Evaluate does."""
    url, store = served_store
    return url, store, best_run(training_runs(store.list_runs())).id


def plot_frame(page, key: str):
    """The plot area of a chart (its left, top, width, height in the page) and its axes' ranges, once drawn."""
    return page.evaluate(
        """(key) => {
            const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            if (!plot || !plot._fullLayout || !plot._fullLayout.xaxis._length) return null;
            const {xaxis, yaxis} = plot._fullLayout;
            const box = plot.getBoundingClientRect();
            return {left: box.left + xaxis._offset, top: box.top + yaxis._offset, width: xaxis._length, height: yaxis._length,
                    x: xaxis.range, y: yaxis.range};
        }""",
        key,
    )


def settled_frame(page, key: str) -> dict:
    """Measured until it stops moving: Streamlit sizes a chart after it first draws."""
    seen = []

    def settled():
        seen.append(plot_frame(page, key))
        return seen[-1] if seen[-1] and len(seen) > 1 and seen[-1] == seen[-2] else None

    return wait_until(settled, timeout=60, every=0.5, message=f"the chart {key} to settle")


def loneliest_point(pixels: np.ndarray, avoid: int) -> int:
    """The point farthest from its nearest neighbour on screen, so a click there can only mean it."""
    distances = np.sqrt(((pixels[:, None, :] - pixels[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distances, np.inf)
    nearest = distances.min(axis=1)
    nearest[distances[avoid] < 30] = 0  # not next to the star that marks the image shown now
    nearest[avoid] = 0
    return int(np.argmax(nearest))


def activations_shown(page, key: str) -> list[float]:
    return page.evaluate(
        """(key) => {
            const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return plot && plot._fullData ? Array.from(plot._fullData[0].z[0]) : null;
        }""",
        key,
    )


def test_click_a_point_in_the_projection_and_see_that_images_activations(server, browser, dataset):
    url, store, run_id = server
    page = open_app(browser, url)
    go_to(page, "Inside")
    page.get_by_text("Layer by layer").wait_for(timeout=60000)
    page.get_by_text("Where the test images land").click()
    page.get_by_text("Layer by layer").wait_for(state="detached", timeout=60000)  # the first view's rerun is over
    settled_frame(page, "inside_pixels_pca_0")
    frame = settled_frame(page, "inside_net_pca_0")
    screenshot(page, "inside-projection")

    points = run_pca(store, run_id, load_model(store, run_id), dataset).points  # kept by the page: read, not computed
    x = frame["left"] + (points[:, 0] - frame["x"][0]) / (frame["x"][1] - frame["x"][0]) * frame["width"]
    y = frame["top"] + (frame["y"][1] - points[:, 1]) / (frame["y"][1] - frame["y"][0]) * frame["height"]
    # Only points well inside the plot area, where nothing else (legend, edges) sits.
    margin = 10
    inside = ((x > frame["left"] + margin) & (x < frame["left"] + frame["width"] - margin)
              & (y > frame["top"] + margin) & (y < frame["top"] + frame["height"] - margin))
    candidates = np.flatnonzero(inside)
    pixels = np.stack([x[candidates], y[candidates]], axis=1)
    shown_now = int(np.flatnonzero(candidates == 0)[0]) if 0 in candidates else 0
    index = int(candidates[loneliest_point(pixels, shown_now)])
    assert index != 0
    x, y = float(x[index]), float(y[index])
    page.mouse.move(x, y)  # hover first, as a person would: Plotly picks the point under the pointer
    page.mouse.click(x, y)

    expect(page.get_by_test_id("stNumberInputField")).to_have_value(str(index), timeout=60000)
    page.get_by_text(f"Test image #{index}", exact=True).wait_for(timeout=30000)  # the image's caption
    look = Inside(load_model(store, run_id)).look(dataset.x_test[index] / 255.0)
    for output in look.outputs:  # strips, the most active unit first
        expected = np.sort(output.values)[::-1]
        wait_until(lambda output=output, expected=expected: (shown := activations_shown(page, f"inside_layer_{output.name}")) is not None
                   and np.allclose(shown, expected, atol=1e-4), timeout=30, message=f"image #{index}'s {output.name}")
    screenshot(page, "inside-image")

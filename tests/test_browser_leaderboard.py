"""Leaderboard and Evaluate in a real browser: tick two runs and see their curves, download a model,
click a confusion-matrix cell and see exactly its images."""

import numpy as np
import pytest
from playwright.sync_api import expect
from test_browser_train import open_app

from fmnist.dataset import FASHION_MNIST
from fmnist.leaderboard import best_run, training_runs

from browser import CHROMIUM, screenshot
from helpers import wait_until

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")

# Streamlit draws a dataframe's header and each row 35 px high (its default row height).
ROW_HEIGHT = 35


@pytest.fixture(scope="module")
def server(served_store):
    """The shared server (conftest.served_store), with the tiny runs "narrow" (64-32) and "wide" (128)."""
    return served_store


def go_to(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30000)


def tick_row(page, name: str) -> None:
    """Tick a run in the leaderboard. Glide's data grid is a canvas, but it keeps an accessible copy
    of the table in the DOM: find the run's row there (aria-rowindex 1 is the header), then click the
    row's checkbox where the canvas draws it, in the first column."""
    table = page.locator(".st-key-lb_table")
    # The copy is hidden from view (and from get_by_role), so plain CSS finds it.
    row = table.locator("tbody tr").filter(has=page.locator("td").get_by_text(name, exact=True))
    position = int(row.get_attribute("aria-rowindex")) - 1
    box = table.get_by_test_id("stDataFrameResizable").bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + ROW_HEIGHT * position + ROW_HEIGHT / 2)
    expect(row).to_have_attribute("aria-selected", "true", timeout=30000)


def trace_names(page, key: str) -> list[str]:
    return page.evaluate(
        """(key) => {
            const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return plot && plot._fullData ? plot._fullData.map(t => t.name) : [];
        }""",
        key,
    )


def wait_for_curves(page, labels: list[str]) -> None:
    """The overlaid loss curves show exactly these runs, training and validation each."""
    expected = [name for label in labels for name in (label, f"{label} (val)")]
    wait_until(lambda: trace_names(page, "lb_loss") == expected, timeout=60, message=f"the curves of {labels}")


def click_cell(page, true_class: int, predicted_class: int) -> None:
    """Click the middle of a confusion-matrix cell, found through Plotly's own axes
    (l2p: a category's pixel offset inside the plot area, _offset: the plot area's).
    The chart is measured until it stops moving: Streamlit sizes it after it first draws."""
    def position():
        return page.evaluate(
            """([col, row]) => {
                const plot = document.querySelector("[class*='st-key-eval_cm'] .js-plotly-plot");
                if (!plot || !plot._fullLayout) return null;
                const {xaxis, yaxis} = plot._fullLayout;
                const box = plot.getBoundingClientRect();
                return [box.left + xaxis._offset + xaxis.l2p(col), box.top + yaxis._offset + yaxis.l2p(row)];
            }""",
            [int(predicted_class), int(true_class)],
        )

    seen = []

    def settled():
        seen.append(position())
        return seen[-1] if len(seen) > 1 and seen[-1] == seen[-2] else None

    x, y = wait_until(settled, timeout=30, every=0.5, message="the confusion matrix to settle")
    page.mouse.move(x, y)  # hover first, as a person would: Plotly picks the point under the pointer
    page.mouse.click(x, y)


def gallery_indices(page) -> list[int]:
    captions = page.locator(".st-key-eval_gallery [data-testid='stCaptionContainer']").all_inner_texts()
    return [int(text.split()[0].lstrip("#")) for text in captions]


def test_compare_two_runs_then_click_a_confusion_cell(server, browser, dataset):
    url, store = server
    narrow, wide = (next(r for r in store.list_runs() if r.name == name) for name in ("narrow", "wide"))
    page = open_app(browser, url)

    go_to(page, "Leaderboard")
    by_accuracy = sorted([(narrow, "64-32"), (wide, "128")], key=lambda pair: -pair[0].test_acc)
    labels = {run.id: f"#{run.id} {run.name} ({stack})" for run, stack in by_accuracy}
    # One tick at a time, each waiting for its curves, as a person would.
    tick_row(page, "narrow")
    wait_for_curves(page, [labels[narrow.id]])
    tick_row(page, "wide")
    wait_for_curves(page, list(labels.values()))
    for run in (narrow, wide):
        # Polled, not expect(): while React redraws the boxes a field can briefly exist twice.
        wait_until(lambda run=run: page.locator(f".st-key-lb_name_{run.id} input").evaluate_all("els => els.map(e => e.value)") == [run.name],
                   timeout=30, message=f"run {run.id}'s name in its rename field")
    screenshot(page, "leaderboard-compare")

    with page.expect_download(timeout=30000) as download:
        page.locator(f".st-key-lb_model_{wide.id} button").click()
    assert open(download.value.path(), "rb").read() == store.model_path(wide.id).read_bytes()

    go_to(page, "Evaluate")
    page.get_by_text("test images of").wait_for(timeout=30000)  # the page has drawn to its end
    best = best_run(training_runs(store.list_runs()))  # the run Evaluate opens on
    probs = np.load(store.probs_path(best.id), allow_pickle=False)
    predicted = np.argmax(probs, axis=1)
    mistakes = np.zeros((10, 10), dtype=int)
    np.add.at(mistakes, (dataset.y_test, predicted), 1)
    np.fill_diagonal(mistakes, 0)
    # The page opens on the most common mistake: click the next most common one.
    mistakes_elsewhere = mistakes.copy()
    mistakes_elsewhere[np.unravel_index(np.argmax(mistakes), mistakes.shape)] = -1
    true_class, predicted_class = np.unravel_index(np.argmax(mistakes_elsewhere), mistakes.shape)
    click_cell(page, true_class, predicted_class)

    names = FASHION_MNIST.class_names
    heading = f"{mistakes[true_class, predicted_class]} test images of {names[true_class]} classified as {names[predicted_class]}"
    page.get_by_text(heading).wait_for(timeout=30000)
    expect(page.get_by_role("combobox", name="True class")).to_have_value(FASHION_MNIST.class_names[true_class])
    expect(page.get_by_role("combobox", name="Predicted class")).to_have_value(FASHION_MNIST.class_names[predicted_class])
    in_cell = np.flatnonzero((dataset.y_test == true_class) & (predicted == predicted_class))
    shown = sorted(in_cell, key=lambda i: -probs[i, predicted_class])[:40]
    wait_until(lambda: gallery_indices(page) == shown, timeout=30, message="the gallery of the clicked cell")
    images = page.locator(".st-key-eval_gallery img")
    expect(images).to_have_count(len(shown))
    page.wait_for_function("""() => [...document.querySelectorAll('.st-key-eval_gallery img')]
                                      .every(img => img.complete && img.naturalWidth === 84)""", timeout=30000)
    screenshot(page, "evaluate-cell")

"""Build & Train in a real browser: Debian's Chromium against `streamlit run` on 127.0.0.1."""

import re
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from fmnist.models import PRESETS, count_params, dense_spec, stack_name
from fmnist.services import Actor, start_training
from fmnist.store import RunStore
from fmnist.worker import try_start

from browser import CHROMIUM, app_idle, free_port, screenshot, set_slider, set_tab_hidden, start_streamlit
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
    """Points of the per-batch training loss line as the live chart last drew it (fmnist.live_chart
    marks a chart once Plotly has drawn it)."""
    drawn = page.locator('.chart[data-metric="loss"]').evaluate_all("charts => charts.map(c => c.dataset.points)")
    return int(drawn[0] or 0) if drawn else 0


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
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=30000)
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


def ended_run(store: RunStore) -> int:
    """A run that trained two epochs and finished, written to the store as the engine writes it."""
    run_id = store.create_run(dense_spec([32], epochs=2), name="ended long ago")
    assert try_start(store, run_id, max_parallel=1)
    for epoch in (1, 2):
        store.record_progress(run_id, epoch, 10, 10, 1000.0, [(epoch, 10, 0.5 / epoch, 0.8)])
        store.record_epoch(run_id, epoch, {"loss": 0.5 / epoch, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.78}, 1.0)
    store.finish(run_id, "finished", test_loss=0.4, test_acc=0.85, train_s=2.0)
    return run_id


def test_an_ended_run_stands_still_until_a_run_starts_elsewhere(server, browser):
    """Issue 13: a tab showing a run that has ended is not sent its curves again and again; a run
    started from elsewhere (here the way the app itself starts one) makes it refresh again."""
    url, home = server
    store = RunStore(home)
    ended_run(store)
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: received.append(frame)))
    page.goto(url)
    page.get_by_text("ended long ago").first.wait_for(timeout=30000)
    page.get_by_text("· finished").wait_for(timeout=30000)
    wait_until(lambda: live_points(page) == 2, timeout=30, message="the ended run's two per-batch points")
    page.wait_for_timeout(2000)  # the page run's last messages
    received.clear()
    page.wait_for_timeout(4000)  # four refreshes of a live panel
    resent = [frame for frame in received if isinstance(frame, bytes) and b"fmnist.live_chart" in frame]
    assert not resent, "the ended run's curves were sent again"

    run_id = start_training(store, Actor.local(), dense_spec([32], epochs=30), name="started elsewhere",
                             train_limit=20000, backend_setting="tensorflow")
    try:
        page.get_by_text("· running").wait_for(timeout=60000)
        seen = wait_until(lambda: live_points(page), timeout=60, message="live points of the new run")
        wait_until(lambda: live_points(page) > seen, timeout=30, message="the new run's curve to gain points")
    finally:
        store.request_stop(run_id)
    page.get_by_text("· stopped").wait_for(timeout=60000)


def test_the_live_chart_shows_each_new_point_and_an_ended_runs_view_stands_still(server, browser):
    """A run trained by this test process, written to the store as the engine writes it: each new
    per-batch point shows in the live chart within a few seconds, with no click (the panel
    refreshes every second); once the run has ended its view is not sent again."""
    url, home = server
    store = RunStore(home)
    run_id = store.create_run(dense_spec([32], epochs=3), name="written by the test")
    assert try_start(store, run_id, max_parallel=1)  # this process trains it: alive, so not taken for dead
    try:
        store.record_progress(run_id, 1, 1, 10, 1000.0, [(1, 1, 2.0, 0.2)])
        page = open_app(browser, url)
        page.get_by_text(re.compile(r"written by the test \(32\) · running")).wait_for(timeout=30000)
        wait_until(lambda: live_points(page) == 1, timeout=30, message="the run's first point")
        for step in (2, 3, 4):
            store.record_progress(run_id, 1, step, 10, 1000.0, [(1, step, 2.0 / step, 0.2 * step)])
            wait_until(lambda step=step: live_points(page) == step, timeout=3, message=f"point {step} in the chart")
        page.get_by_text("Epoch 1/3 · batch 4/10").wait_for(timeout=5000)
        store.record_epoch(run_id, 1, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.55, "val_accuracy": 0.78}, 1.0)
    finally:
        store.finish(run_id, "stopped", train_s=1.0)
    page.get_by_text(re.compile(r"written by the test \(32\) · stopped")).wait_for(timeout=30000)
    assert live_points(page) == 4, "its curves stay"
    assert not page.get_by_text("Epoch 1/3 · batch").is_visible(), "no progress line once it has ended"
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: received.append(frame)))
    page.reload()  # a fresh connection, whose frames this test sees
    page.get_by_text(re.compile(r"written by the test \(32\) · stopped")).wait_for(timeout=30000)
    wait_until(lambda: live_points(page) == 4, timeout=30, message="the ended run's curves after a reload")
    page.wait_for_timeout(2000)  # the page run's last messages
    received.clear()
    page.wait_for_timeout(3000)  # three refreshes of a live panel
    assert not [frame for frame in received if isinstance(frame, bytes) and b"fmnist.live_chart" in frame], \
        "the ended run's chart was sent again"

    # The pointer on the loss chart's epoch point reads out that epoch's values; away from the curves, nothing.
    loss_chart = page.locator('.chart[data-metric="loss"]')
    x, y = loss_chart.evaluate("chart => [chart._fullLayout.xaxis.l2p(1) + chart._fullLayout._size.l,"
                               " chart._fullLayout.yaxis.l2p(0.5) + chart._fullLayout._size.t]")
    loss_chart.hover(position={"x": x + 2, "y": y - 2})
    readout = loss_chart.locator(".hoverlayer")
    expect(readout).to_have_text("epoch 1train loss 0.5validation loss 0.55", timeout=5000)
    loss_chart.hover(position={"x": 5, "y": 5})
    expect(readout).to_have_text("")

    # Plotly's modebar: the picture as PNG, zoom, pan and back.
    loss_chart.hover(position={"x": x, "y": y})
    for button in ("Download plot as a PNG", "Zoom", "Pan", "Reset axes"):
        expect(loss_chart.locator(f'.modebar-btn[data-title="{button}"]')).to_have_count(1)


def training_run(store: RunStore, name: str) -> int:
    """A run of three epochs that this process has claimed (alive, so not reaped) with its first
    per-batch point written, as the engine writes it; the test writes the rest."""
    run_id = store.create_run(dense_spec([32], epochs=3), name=name)
    assert try_start(store, run_id, max_parallel=1)
    store.record_progress(run_id, 1, 1, 10, 1000.0, [(1, 1, 2.0, 0.2)])
    return run_id


def drawn_for_hidden(page) -> bool:
    """Whether the live panel's visibility component says the page was drawn for a hidden tab (fmnist.tab_visibility)."""
    watcher = page.get_by_test_id("stMain").locator(".fmnist-visibility")
    return watcher.evaluate("root => Boolean(root.visibilityState?.data?.hidden)")


def test_a_hidden_tab_stops_refreshing_and_catches_up_when_shown(server, browser):
    """Issue 13: a tab in the background asks the server for nothing while a run trains (no
    refresh requested, no chart sent), and shows the newest point at once when it is shown again.
    The tab's visibility is set by the test the way the browser sets it (browser.set_tab_hidden:
    headless Chromium never hides a page itself)."""
    url, home = server
    store = RunStore(home)
    run_id = training_run(store, "watched from behind")
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        sent, received = [], []
        page.on("websocket", lambda ws: (ws.on("framesent", lambda frame: sent.append(frame)),
                                          ws.on("framereceived", lambda frame: received.append(frame))))
        page.goto(url)
        page.get_by_text(re.compile(r"watched from behind \(32\) · running")).wait_for(timeout=30000)
        wait_until(lambda: live_points(page) == 1, timeout=30, message="the run's first point")
        store.record_progress(run_id, 1, 2, 10, 1000.0, [(1, 2, 1.0, 0.4)])
        wait_until(lambda: live_points(page) == 2, timeout=3, message="point 2 in the visible tab")

        set_tab_hidden(page, True)
        wait_until(lambda: drawn_for_hidden(page), timeout=10, message="the page drawn again for a hidden tab")
        app_idle(page)
        page.wait_for_timeout(1500)  # a refresh that was on its way as the tab hid
        sent.clear()
        received.clear()
        for step in (3, 4, 5):
            store.record_progress(run_id, 1, step, 10, 1000.0, [(1, step, 2.0 / step, 0.2 * step)])
            page.wait_for_timeout(1000)
        assert not sent, "a hidden tab asked the server for a refresh"
        assert not [frame for frame in received if isinstance(frame, bytes) and b"fmnist.live_chart" in frame]
        assert live_points(page) == 2

        set_tab_hidden(page, False)
        wait_until(lambda: live_points(page) == 5, timeout=3, message="the newest point once the tab shows again")
        assert not drawn_for_hidden(page)
        store.record_progress(run_id, 1, 6, 10, 1000.0, [(1, 6, 0.3, 0.9)])
        wait_until(lambda: live_points(page) == 6, timeout=3, message="point 6: refreshing every second again")
    finally:
        store.finish(run_id, "stopped", train_s=1.0)


def test_a_hidden_tab_on_another_page_stops_its_sidebar_refreshing(server, browser):
    """Issue 13: away from Build & Train, the sidebar refreshes the training run's status every
    two seconds; in a hidden tab it asks the server for nothing, and shows the newest status at
    once when the tab is shown again."""
    url, home = server
    store = RunStore(home)
    run_id = training_run(store, "followed from the sidebar")
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        sent = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
        page.goto(url + "/leaderboard")
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("epoch 1/3").wait_for(timeout=30000)
        watcher = sidebar.locator(".fmnist-visibility")
        frames_sent = lambda: page.wait_for_timeout(100) or sent  # noqa: E731  (Playwright hears frames while it waits)
        drawn_for_hidden = lambda: watcher.evaluate("root => Boolean(root.visibilityState?.data?.hidden)")  # noqa: E731
        app_idle(page)
        sent.clear()
        wait_until(frames_sent, timeout=4.5, every=0, message="a visible tab's sidebar to refresh (every two seconds while a run trains)")

        set_tab_hidden(page, True)
        wait_until(drawn_for_hidden, timeout=10, message="the page drawn again for a hidden tab")
        app_idle(page)
        page.wait_for_timeout(2000)  # a refresh that was on its way as the tab hid
        sent.clear()
        store.record_progress(run_id, 2, 1, 10, 1000.0, [(2, 1, 1.0, 0.5)])
        page.wait_for_timeout(4500)  # two of the sidebar's refresh periods
        assert not sent, "a hidden tab's sidebar asked the server for a refresh"
        assert sidebar.get_by_text("epoch 1/3").is_visible()

        set_tab_hidden(page, False)
        sidebar.get_by_text("epoch 2/3").wait_for(timeout=3000)
        assert not drawn_for_hidden()
        sent.clear()
        wait_until(frames_sent, timeout=4.5, every=0, message="the sidebar to refresh every two seconds again")
    finally:
        store.finish(run_id, "stopped", train_s=1.0)


def test_the_live_chart_grows_point_by_point_on_fixed_axes_and_fetches_plotly_once(server, browser):
    """Issue 30: past its second epoch the chart's axes stand still and new points are handed to
    Plotly alone (fmnist/static/live_chart.js): each shows within a few seconds, and the pointer
    reads the newest. plotly.js comes once, as a file, never with a refresh."""
    url, home = server
    store = RunStore(home)
    run_id = store.create_run(dense_spec([32], epochs=5), name="past two epochs")
    assert try_start(store, run_id, max_parallel=1)
    try:
        for epoch in (1, 2):
            for step in range(1, 11):
                store.record_progress(run_id, epoch, step, 10, 1000.0, [(epoch, step, 1.0 / (epoch + step), 0.5 + 0.02 * step)])
            store.record_epoch(run_id, epoch, {"loss": 0.5 / epoch, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.78}, 1.0)
        page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        requested, live_frames = [], []
        page.on("request", lambda request: requested.append(request.url))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: live_frames.append(len(frame)) if isinstance(frame, bytes)
                                              and b"fmnist.live_chart" in frame else None))
        page.goto(url)
        page.get_by_text(re.compile(r"past two epochs \(32\) · running")).wait_for(timeout=30000)
        wait_until(lambda: live_points(page) == 20, timeout=30, message="two epochs of points")
        loss_chart = page.locator('.chart[data-metric="loss"]')
        focus = loss_chart.evaluate("chart => chart.layout.yaxis.range")
        for step in (1, 2, 3):
            store.record_progress(run_id, 3, step, 10, 1000.0, [(3, step, 0.3 - 0.01 * step, 0.9)])
            wait_until(lambda step=step: live_points(page) == 20 + step, timeout=3, message=f"epoch 3's point {step} in the chart")
        assert loss_chart.evaluate("chart => chart.layout.yaxis.range") == focus, "the axes stood still"

        # The pointer on the newest point (2.3 epochs, loss 0.27) reads it: Plotly knows the points it was handed.
        x, y = loss_chart.evaluate("chart => [chart._fullLayout.xaxis.l2p(2.3) + chart._fullLayout._size.l,"
                                   " chart._fullLayout.yaxis.l2p(0.27) + chart._fullLayout._size.t]")
        loss_chart.hover(position={"x": x, "y": y})
        expect(loss_chart.locator(".hoverlayer")).to_contain_text("train (per batch) loss 0.27", timeout=5000)
    finally:
        store.finish(run_id, "stopped", train_s=1.0)
    assert len([u for u in requested if u.endswith("/plotly.min.js")]) == 1, "plotly.js fetched once a page"
    assert len(live_frames) >= 3 and max(live_frames) < 50_000, f"a refresh sends the figures, not plotly.js: {live_frames}"


def test_a_link_opens_the_same_stack_and_the_address_follows_the_sliders(server, browser):
    """Build & Train's address holds its stack: a link sets the sliders, a slider moved shows in the
    address at once, and that address opened by a friend (another browser) shows the same stack."""
    url, _ = server
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{url}/?layers=96,48&epochs=7&lr=0.003")
    page.get_by_role("heading", name="Build & Train").wait_for(timeout=60000)
    app_idle(page)
    shown = {label: page.get_by_test_id("stSlider").filter(has_text=label).get_by_test_id("stSliderThumbValue")
             for label in ("Hidden layers", "Layer 1 width", "Layer 2 width", "Epochs")}
    for label, value in {"Hidden layers": "2", "Layer 1 width": "96", "Layer 2 width": "48", "Epochs": "7"}.items():
        expect(shown[label]).to_have_text(value, timeout=30000)
    set_slider(page, "Epochs", "9")
    wait_until(lambda: (query := parse_qs(urlparse(page.url).query)).get("epochs") == ["9"] and query.get("layers") == ["96,48"],
               timeout=30, message="the address to hold the moved slider")

    friend = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    friend.goto(page.url)
    friend.get_by_role("heading", name="Build & Train").wait_for(timeout=60000)
    for label, value in {"Layer 1 width": "96", "Layer 2 width": "48", "Epochs": "9"}.items():
        expect(friend.get_by_test_id("stSlider").filter(has_text=label).get_by_test_id("stSliderThumbValue")).to_have_text(
            value, timeout=30000)
    screenshot(friend, "train-opened-from-a-link")

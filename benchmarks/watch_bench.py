"""`python -m benchmarks.watch_bench`: what watching the app costs, measured as a person uses it.

Starts `streamlit run streamlit_app.py` on a free 127.0.0.1 port with a temporary FMNIST_HOME (the
app's own .streamlit/config.toml applies), then trains the same model with `python -m fmnist train`
alone, with one Chromium tab on Build & Train watching it, and with two tabs (opened, and settled, before
the training starts, as when a person opens the page and then trains), in alternating rounds,
and prints the median samples/s and the watched/alone ratios. Then, with nothing training: the
server's and the browser's CPU with one tab idle on each page, the time of a page switch and of a
slider move as the browser shows them, and the first Classify visit after a fresh server start.

Needs what the browser tests need (`./setup.sh --test`): Playwright and Debian's Chromium, started
as the browser tests start them (benchmarks/browser.py). No figure here is asserted anywhere: it
prints, you read.
"""

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, app_idle, free_port, start_streamlit
from benchmarks.cpu_meter import CpuMeter, cpu_seconds
from fmnist.dataset import FASHION_MNIST
from fmnist.machine import cpu_name

CONDITIONS = ("alone", "one tab", "two tabs")
TABS = {"alone": 0, "one tab": 1, "two tabs": 2}
# The pages measured, by URL path, and what shows once each is complete (the last thing it draws).
# Their titles and order are the app's own (streamlit_app.py's navigation), read from its sidebar:
# see app_pages.
COMPLETE = {
    "": "· finished",
    "leaderboard": "Reproduce the seed's table",
    "evaluate": "Mistakes",
    "classify": "Brush size",
    "data": "9 · Ankle boot",
}
HEADINGS = {"data": "The data"}  # a page's heading where it is not its title in the sidebar
VIEWPORT = {"width": 1400, "height": 1000}
SETTLE_S = 15
# The live panel's progress line (fmnist.live_chart), shown while a run trains.
PROGRESS_LINE = re.compile("samples/s · ETA")


def open_tab(browser, url: str, ready: str = "Build & Train", role_heading: bool = True):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url)
    if role_heading:
        page.get_by_role("heading", name=ready).wait_for(timeout=60000)
    else:
        page.get_by_text(ready).first.wait_for(timeout=60000)
    app_idle(page)
    return page


def app_pages(browser, url: str) -> list[tuple[str, str, str]]:
    """The measured pages as (title in the sidebar, URL path, what shows once complete), in the
    app's order: its navigation as the sidebar lists it, so that a page is registered in one place."""
    page = open_tab(browser, url)
    links = page.get_by_test_id("stSidebarNavLink").evaluate_all(
        "links => links.map(link => [link.querySelector('[label]').getAttribute('label'), new URL(link.href).pathname.slice(1)])")
    close(page)
    paths = {path for _, path in links}
    if not set(COMPLETE) <= paths:
        raise RuntimeError(f"the app's navigation has no page at {sorted(set(COMPLETE) - paths)}: update COMPLETE in {__file__}")
    return [(title, path, COMPLETE[path]) for title, path in links if path in COMPLETE]


def live_points(page) -> str:
    """The per-batch points the live loss chart drew (fmnist.live_chart marks a chart once Plotly drew it)."""
    return page.locator('[data-metric="loss"]').get_attribute("data-points", timeout=30000) or "0"


def close(page) -> None:
    page.context.close()


def train_command(args, name: str) -> list[str]:
    command = [sys.executable, "-m", "fmnist", "train", "--layers", "256,128", "--batch-size", "64",
               "--epochs", str(args.epochs), "--name", name]
    return command + (["--limit", str(args.limit)] if args.limit else [])


def train_round(args, home: Path, browser, url: str, condition: str, meter: CpuMeter, name: str) -> dict:
    """One training from the command line while `condition`'s tabs watch it; its samples/s and the CPU around it."""
    pages = [open_tab(browser, url) for _ in range(TABS[condition])]
    if pages:  # the tabs have finished loading, as when a person opens the page and then starts a training
        pages[0].wait_for_timeout(SETTLE_S * 1000)
    meter.start()
    process = subprocess.Popen(train_command(args, name), cwd=ROOT, env={**os.environ, "FMNIST_HOME": str(home)},
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for page in pages:  # as a person who watches: the live panel in view once the run shows up
        page.get_by_text(PROGRESS_LINE).first.wait_for(timeout=120000)
        page.get_by_text(PROGRESS_LINE).first.evaluate("element => element.scrollIntoView({block: 'start'})")
    out, _ = process.communicate(timeout=900)  # the bench sits still while it trains
    server_cpu, browser_cpu = meter.stop()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "finished", summary
    for page in pages:  # each tab did watch: its live curve has the run's points, and it saw the end
        page.get_by_text(f"#{summary['run_id']} {name}").first.wait_for(timeout=30000)
        page.get_by_text("· finished").first.wait_for(timeout=30000)
        assert int(live_points(page)) > 0, "a watching tab shows no live points"
        close(page)
    return {"samples_per_s": summary["samples_per_s"], "server_cpu": server_cpu, "browser_cpu": browser_cpu,
            "engine": f"{summary.get('backend') or 'tensorflow'} on {summary.get('device') or 'the CPU'}"}


def idle_cpu(browser, url: str, pages, meter: CpuMeter, seconds: float) -> list[dict]:
    rows = []
    for title, path, ready in pages:
        page = open_tab(browser, f"{url}/{path}", ready, role_heading=False)
        # A page goes on loading after it shows: the charts' code, fonts, the browser's garbage
        # collection; on a busy machine for well over ten seconds. Idle is what comes after.
        page.wait_for_timeout(SETTLE_S * 1000)
        meter.start()
        time.sleep(seconds)
        server_cpu, browser_cpu = meter.stop()
        rows.append({"page": title, "server_cpu": server_cpu, "browser_cpu": browser_cpu})
        close(page)
    return rows


def page_switches(browser, url: str, pages, loops: int = 3) -> dict[str, list[float]]:
    """Seconds from a click in the sidebar to the page complete and its script run over."""
    page = open_tab(browser, url)
    times = {title: [] for title, _, _ in pages}
    for _ in range(loops):
        for title, path, ready in pages[1:] + pages[:1]:
            start = time.perf_counter()
            page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
            page.get_by_role("heading", name=HEADINGS.get(path, title)).wait_for(timeout=60000)
            page.get_by_text(ready).first.wait_for(timeout=60000)
            app_idle(page)
            times[title].append(time.perf_counter() - start)
    close(page)
    return times


def slider_moves(browser, url: str, moves: int = 6) -> list[float]:
    """Seconds from a key press on a layer's width slider to the new parameter count shown."""
    page = open_tab(browser, url)
    slider = page.get_by_test_id("stSlider").filter(has_text="Layer 1 width")
    metric = page.get_by_test_id("stMetric").filter(has_text="Parameters")
    times = []
    for i in range(moves):
        before = metric.inner_text()
        start = time.perf_counter()
        slider.get_by_role("slider").press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function("([el, text]) => el.innerText !== text", arg=[metric.element_handle(), before], polling=10)
        app_idle(page)
        times.append(time.perf_counter() - start)
    close(page)
    return times


def server_side_times(home: Path, pages, repeats: int = 5) -> dict[str, float]:
    """Script-run seconds as the server spends them (AppTest: no browser, no websocket), medians."""
    os.environ["FMNIST_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Classify loads a model in this process
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # AppTest's "missing ScriptRunContext" chatter
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()

    def timed(step) -> float:
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    slider = [timed(lambda i=i: at.slider(key="build_width_0").set_value(100 + i % 2).run()) for i in range(repeats)]
    switch = {}
    for _ in range(2):  # the second visit is the one a person makes most
        for title, path, _ in pages[1:] + pages[:1]:
            script = f"pages/{path or 'train'}.py"
            switch[title] = timed(lambda script=script: at.switch_page(script).run())
    assert not at.exception, at.exception
    return {"slider": statistics.median(slider), **switch}


def wait_until_quiet(process: psutil.Process, limit_s: float = 120.0) -> float:
    """Seconds until the process uses under a tenth of a core for two seconds running (its warm-up done)."""
    start, quiet = time.perf_counter(), 0
    while time.perf_counter() - start < limit_s and quiet < 2:
        before = cpu_seconds(process)
        time.sleep(1.0)
        quiet = quiet + 1 if cpu_seconds(process) - before < 0.1 else 0
    return time.perf_counter() - start - 2.0


def first_classify(browser, home: Path, warm_up: bool, wait: bool) -> dict:
    """A fresh server, the app's first page, then a click on Classify (at once, or once the server
    has gone quiet after its warm-up) until a model is ready to classify."""
    port = free_port()
    os.environ["FMNIST_WARM_UP"] = "1" if warm_up else "0"  # the server inherits it
    try:
        server = start_streamlit(home, port)
    finally:
        os.environ.pop("FMNIST_WARM_UP")
    try:
        page = browser.new_context(viewport=VIEWPORT).new_page()
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("· finished").first.wait_for(timeout=60000)
        app_idle(page)
        first_page = time.perf_counter() - start
        quiet_after = wait_until_quiet(psutil.Process(server.pid)) if wait else 0.0
        start = time.perf_counter()
        page.get_by_test_id("stSidebarNav").get_by_text("Classify", exact=True).click()
        page.get_by_text("Brush size").wait_for(timeout=120000)
        app_idle(page)
        classify = time.perf_counter() - start
        close(page)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"first_page": first_page, "quiet_after": quiet_after, "classify": classify}


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each set-up (default 3)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the 256-128 stack per round (default 8)")
    parser.add_argument("--limit", type=int, help=f"training images per round (default all {FASHION_MNIST.train_size:,})")
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds of CPU measured per idle page (default 20)")
    parser.add_argument("--training-only", action="store_true", help="only the rounds of training, alone and watched")
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"needs Debian's Chromium at {CHROMIUM} (./setup.sh --test)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    print(f"CPU: {cpu_name()}, {psutil.cpu_count()} cores; model 256-128, batch 64, {args.epochs} epochs, "
          f"{args.limit or FASHION_MNIST.train_size:,} images; {args.rounds} rounds each, alternating", flush=True)
    with tempfile.TemporaryDirectory(prefix="fmnist-watch-bench-") as tmp, sync_playwright() as playwright:
        home = Path(tmp) / "home"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_streamlit(home, port)
        try:
            meter = CpuMeter(server.pid)
            # Untimed: warms the disk cache, decodes the dataset into the home, lets the server warm up.
            warm = train_round(args, home, browser, url, "one tab", meter, "warm-up")
            print(f"trained by: {warm['engine']} (the default engine, as `python -m fmnist train` picks it)", flush=True)
            pages = app_pages(browser, url)
            rounds = {condition: [] for condition in CONDITIONS}
            for r in range(args.rounds):
                order = CONDITIONS[r % 3:] + CONDITIONS[:r % 3]
                for condition in order:
                    result = train_round(args, home, browser, url, condition, meter, f"{condition} {r + 1}")
                    rounds[condition].append(result)
                    print(f"round {r + 1} {condition:>8}: {result['samples_per_s']:8,.0f} samples/s · server "
                          f"{result['server_cpu']:.2f} core · browser {result['browser_cpu']:.2f} core", flush=True)
            alone = median([x["samples_per_s"] for x in rounds["alone"]])
            print("\nsamples/s, median (all rounds) · watched / alone · server and browser CPU while training")
            for condition in CONDITIONS:
                speeds = [x["samples_per_s"] for x in rounds[condition]]
                print(f"  {condition:>8}: {median(speeds):8,.0f} ({', '.join(f'{s:,.0f}' for s in speeds)})"
                      f" · {median(speeds) / alone:.3f} · server {median([x['server_cpu'] for x in rounds[condition]]):.2f}"
                      f" · browser {median([x['browser_cpu'] for x in rounds[condition]]):.2f} core", flush=True)
            if args.training_only:
                return 0

            print(f"\nCPU with one tab idle on each page, nothing training ({args.idle_s:.0f} s each, {SETTLE_S} s after it "
                  "showed), cores:")
            for row in idle_cpu(browser, url, pages, meter, args.idle_s):
                print(f"  {row['page']:>13}: server {row['server_cpu']:.3f} · browser {row['browser_cpu']:.3f}", flush=True)

            print("\nIn the browser, from the click to the page complete (median of 3, seconds):")
            for title, times in page_switches(browser, url, pages).items():
                print(f"  {title:>13}: {median(times):.2f} ({', '.join(f'{t:.2f}' for t in times)})", flush=True)
            moves = slider_moves(browser, url)
            print(f"  slider move (key press to new parameter count): {median(moves):.3f} "
                  f"({', '.join(f'{t:.3f}' for t in moves)})", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)

        print("\nServer side (AppTest script runs, seconds):")
        for what, seconds in server_side_times(home, pages).items():
            print(f"  {what:>13}: {seconds:.3f}", flush=True)

        print("\nA fresh server: its first page, then Classify (seconds, from the click to a model ready):")
        for warm_up, wait in ((True, True), (False, True), (True, False)):
            result = first_classify(browser, home, warm_up, wait)
            when = f"once the server was quiet ({result['quiet_after']:.0f} s later)" if wait else "at once"
            print(f"  warm-up {'on ' if warm_up else 'off'}: first page {result['first_page']:.2f}, "
                  f"Classify clicked {when}: {result['classify']:.2f}", flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

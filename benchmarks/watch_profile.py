"""`python -m benchmarks.watch_profile`: what a tab watching a training costs its browser, and where it goes.

watch_bench measures the training's speed with tabs open; on a shared machine its ratios swing with
everyone else's load. This measures the browser alone, with nothing training: `streamlit run
streamlit_app.py` on a temporary FMNIST_HOME, a run written to the store the way the engine writes
it (4 per-batch points a second, an epoch every 10 s; this process is its training process), and
Chromium tabs on Build & Train scrolled to the live panel, as a person who watches the curves has
them. It prints the browser's CPU per tab (all Chromium's processes, and by kind of process), the
server's, and Chrome DevTools' figures for the first tab's renderer: its main thread's busy time,
script, style and layout per second, the bytes its websocket received (those of the live panel's
refreshes apart), and with --profile its JavaScript by file and function.

Needs what the browser tests need (`./setup.sh --test`). No figure here is asserted anywhere.
"""

import argparse
import collections
import math
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, free_port, set_tab_hidden, start_streamlit
from benchmarks.cpu_meter import CpuMeter, browser_processes, cpu_seconds
from benchmarks.watch_bench import VIEWPORT
from fmnist.machine import cpu_name

POINT_EVERY_S = 0.25  # the engine streams about 4 points a second
STEPS = 40  # per epoch: an epoch every 10 s
SETTLE_S = 10


def write_run(home: Path, stop: threading.Event) -> None:
    """A 256-128 run trained by this process, as far as the store can tell: points until `stop`."""
    from fmnist.models import dense_spec
    from fmnist.store import RunStore
    from fmnist.worker import try_start

    store = RunStore(home)
    run_id = store.create_run(dense_spec([256, 128], epochs=50), name="watched")
    assert try_start(store, run_id, max_parallel=1)
    epoch = 1
    while not stop.is_set():
        for step in range(1, STEPS + 1):
            t = epoch - 1 + step / STEPS
            loss, accuracy = 0.3 + 0.5 * math.exp(-t) + 0.02 * math.sin(7 * t), 0.9 - 0.3 * math.exp(-t)
            store.record_progress(run_id, epoch, step, STEPS, 50000.0 + step, [(epoch, step, loss, accuracy)])
            if stop.wait(POINT_EVERY_S):
                break
        store.record_epoch(run_id, epoch, {"loss": loss, "accuracy": accuracy, "val_loss": loss + 0.05,
                                           "val_accuracy": accuracy - 0.02}, STEPS * POINT_EVERY_S)
        epoch += 1
    store.finish(run_id, "stopped", train_s=1.0)


def frame_bytes(frame) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode())


def open_watching_tab(browser, url: str, page_path: str = "", frames: list | None = None):
    """A tab on the app; `frames`, if given, gets each websocket frame the tab receives."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    if frames is not None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    if page_path:  # another page: the sidebar follows the run
        page.goto(f"{url}/{page_path}")
        page.get_by_test_id("stSidebar").get_by_text("Training:").wait_for(timeout=60000)
        return page
    page.goto(url)
    line = page.get_by_text(re.compile("samples/s · ETA")).first
    line.wait_for(timeout=60000)
    line.evaluate("element => element.scrollIntoView({block: 'start'})")  # the progress line on top, the charts below
    return page


def process_kind(process: psutil.Process) -> str:
    try:
        args = process.cmdline()
    except psutil.NoSuchProcess:
        return "ended"
    kind = next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), "browser")
    return kind if kind != "utility" else next((a.split("=", 1)[1] for a in args if a.startswith("--utility-sub-type=")), kind)


def js_profile(profile: dict, seconds: float, top: int = 15) -> None:
    nodes = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    by_node = collections.Counter()
    for node, delta in zip(profile["samples"], profile["timeDeltas"]):
        by_node[node] += delta
    by_file, by_function = collections.Counter(), collections.Counter()
    for node, micros in by_node.items():
        frame = nodes[node]
        file = frame["url"].rsplit("/", 1)[-1]
        by_file[file or frame["functionName"]] += micros
        by_function[f"{frame['functionName'] or '(anonymous)'} in {file or '-'}"] += micros
    for title, counter in (("by file", by_file), ("by function", by_function)):
        print(f"  JavaScript {title} (ms per second):")
        for name, micros in counter.most_common(top):
            print(f"    {micros / 1e3 / seconds:6.1f}  {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=1, help="tabs watching (default 1)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured (default 30)")
    parser.add_argument("--profile", action="store_true", help="also sample the first tab's JavaScript (adds its own cost)")
    parser.add_argument("--hidden", action="store_true", help="the tabs hidden (in the background) once they show the run")
    parser.add_argument("--page", default="", metavar="URL_PATH",
                        help="open this page instead of Build & Train (e.g. leaderboard: the sidebar follows the run)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(f"CPU: {cpu_name()}, {psutil.cpu_count()} cores; load average {', '.join(f'{x:.2f}' for x in psutil.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fmnist-watch-profile-") as tmp, sync_playwright() as playwright:
        home = Path(tmp) / "home"
        home.mkdir()
        port = free_port()
        server = start_streamlit(home, port)
        stop = threading.Event()
        writer = threading.Thread(target=write_run, args=(home, stop), daemon=True)
        writer.start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            frames = []  # the first tab's websocket, as it receives
            pages = [open_watching_tab(browser, f"http://127.0.0.1:{port}", args.page, frames if not i else None) for i in range(args.tabs)]
            for page in pages if args.hidden else ():
                set_tab_hidden(page, True)
            pages[0].wait_for_timeout(SETTLE_S * 1000)
            devtools = pages[0].context.new_cdp_session(pages[0])
            devtools.send("Performance.enable")
            if args.profile:
                devtools.send("Profiler.enable")
                devtools.send("Profiler.setSamplingInterval", {"interval": 1000})
                devtools.send("Profiler.start")
            renderer_metrics = lambda: {m["name"]: m["value"] for m in devtools.send("Performance.getMetrics")["metrics"]}  # noqa: E731
            before = renderer_metrics()
            frames.clear()
            processes = {process: cpu_seconds(process) for process in browser_processes()}
            meter = CpuMeter(server.pid).start()
            time.sleep(args.seconds)
            server_cpu, browser_cpu = meter.stop()
            after = renderer_metrics()
            pages[0].wait_for_timeout(1)  # Playwright hands over the frames it heard
            received = list(frames)
            by_kind = collections.Counter()
            for process, start in processes.items():
                if start is not None:
                    by_kind[process_kind(process)] += max((cpu_seconds(process) or start) - start, 0.0) / args.seconds
            print(f"{args.tabs} tab(s) {'hidden' if args.hidden else 'watching'} for {args.seconds:.0f} s: browser {browser_cpu:.3f} core, "
                  f"{browser_cpu / args.tabs:.3f} a tab; server {server_cpu:.3f} core")
            print("  by process: " + ", ".join(f"{kind} {cores:.3f}" for kind, cores in by_kind.most_common() if cores >= 0.0005))
            per_s = {name: (after[name] - before[name]) / args.seconds for name in after if name in before}
            print(f"  first tab's renderer, main thread, ms per second: busy {1000 * per_s['TaskDuration']:.1f}, "
                  f"script {1000 * per_s['ScriptDuration']:.1f}, style {1000 * per_s['RecalcStyleDuration']:.1f}, "
                  f"layout {1000 * per_s['LayoutDuration']:.1f}; DOM nodes {per_s['Nodes']:+.1f} a second")
            live = [frame_bytes(frame) for frame in received if isinstance(frame, bytes) and b"fmnist.live_chart" in frame]
            print(f"  first tab's websocket received {sum(map(frame_bytes, received)) / args.seconds / 1000:.1f} kB a second in "
                  f"{len(received)} frames; the live chart's {len(live)} frames {sum(live) / max(len(live), 1) / 1000:.1f} kB each "
                  f"(largest {max(live, default=0) / 1000:.1f} kB)")
            if args.profile:
                js_profile(devtools.send("Profiler.stop")["profile"], args.seconds)
            points = pages[0].locator('[data-metric="loss"]').evaluate_all("charts => charts.map(c => c.dataset.points)")
            print(f"  the first tab's loss chart shows {points[0] if points else 'no'} per-batch points")
        finally:
            stop.set()
            writer.join(timeout=10)
            browser.close()
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cores used by the app's server and by Chromium over a stretch of time: what the benches that watch
the app (watch_bench, watch_profile) measure."""

import time

import psutil


def browser_processes() -> list[psutil.Process]:
    """Chromium's processes (browser, renderers, GPU and utility ones): Playwright's driver starts them."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def cpu_seconds(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return None
    return times.user + times.system


class CpuMeter:
    """Cores used by the server and by Chromium between start() and stop()."""

    def __init__(self, server_pid: int):
        self.server = psutil.Process(server_pid)

    def start(self):
        self.t0 = time.perf_counter()
        self.server0 = cpu_seconds(self.server)
        self.browser0 = {process: cpu_seconds(process) for process in browser_processes()}
        return self

    def stop(self) -> tuple[float, float]:
        wall = time.perf_counter() - self.t0
        # A renderer that ended meanwhile (a closed tab) took its seconds with it: counted as none.
        browser = sum(max((cpu_seconds(p) or start) - start, 0.0) for p, start in self.browser0.items() if start is not None)
        return (cpu_seconds(self.server) - self.server0) / wall, browser / wall

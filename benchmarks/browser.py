"""A real Streamlit server and Debian's Chromium driven by Playwright: what the browser tests and the
benches that watch the app (watch_bench, watch_profile) both start and drive."""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_with_this_process() -> None:
    """In a child before it runs: Linux ends it (SIGTERM) when the process that started it ends, so a
    test run killed from outside (a CI timeout, a Ctrl-C twice) leaves no Streamlit server behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_streamlit(home: Path, port: int, address: str | None = "127.0.0.1", extra_args=(), env=None) -> subprocess.Popen:
    """`streamlit run streamlit_app.py` on the port; address None leaves it to the project's config;
    env: more environment variables for the server and the trainings it starts."""
    log = open(home.parent / "streamlit.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", *(["--server.address", address] if address else []),
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false", *extra_args],
        cwd=ROOT, env={**os.environ, "FMNIST_HOME": str(home), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=end_with_this_process,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"streamlit did not start: {(home.parent / 'streamlit.log').read_text()[-2000:]}")


def app_idle(page, timeout: float = 60000) -> None:
    """Wait until the app's script run is over (Streamlit marks it on the app's root element)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout)


def set_tab_hidden(page, hidden: bool) -> None:
    """Hide the page's tab, or show it again, as far as the page can tell: `document.hidden` and
    `visibilityState` change and `visibilitychange` fires, as when a person switches tabs. Headless
    Chromium keeps a page visible whatever happens to it (tried: another page opened in front of it
    in the same context, CDP's Page.setWebLifecycleState and Target.activateTarget), so the page's
    document is told directly."""
    page.evaluate("""hidden => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
        document.dispatchEvent(new Event("visibilitychange"));
    }""", hidden)

import ast
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing a test does lands in the repository's ./runs.
os.environ["FMNIST_HOME"] = tempfile.mkdtemp(prefix="fmnist-tests-")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty FMNIST_HOME for one test; child processes inherit it."""
    monkeypatch.setenv("FMNIST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def dataset():
    """The real Fashion-MNIST, loaded once for the session."""
    from fmnist.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download does not work offline)."""
    from playwright.sync_api import sync_playwright

    from browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def ml_modules_after(app_steps: str) -> list[str]:
    """Run AppTest steps (Python lines using `at`, an AppTest of the app) in a fresh interpreter;
    returns which of tensorflow and keras they imported."""
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60)\n"
        f"{app_steps}\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def run_cli(*args, timeout=240, env=None):
    """Run `python -m fmnist ARGS` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "fmnist", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def wait_until(condition, timeout=60.0, every=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")

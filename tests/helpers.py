"""What several tests share: the app's path, the CLI as a user runs it, waiting, and the TensorFlow-import check."""

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")


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


def run_cli(*args, timeout=240, env=None, input_text=None):
    """Run `python -m fmnist ARGS` as a user would (input_text: what they type); returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "fmnist", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, input=input_text,
    )


def wait_until(condition, timeout=60.0, every=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")

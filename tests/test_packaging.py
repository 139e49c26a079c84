"""The package works outside the editable install: a wheel built from the project holds every
subpackage and every file under fmnist/, and installed into a fresh virtual environment it answers
`python -m fmnist --help` and trains a tiny run from a folder that is not the project's.

All offline: the wheel is built with the installed setuptools (no build isolation), and the
environment sees the installed requirements (--system-site-packages), so only the wheel itself is
installed into it (--no-deps)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

# Top-level packages of the project that the wheel carries (benchmarks: the benches, where present).
PACKAGES = ("fmnist", "benchmarks")
# What a checkout may hold that is no part of the package: run stores, build output, environments.
NOT_SOURCE = shutil.ignore_patterns(".git", "runs", "test-output", "build", "dist", ".venv", "venv", "*.egg-info",
                                    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a clean copy (a build/ folder left in the checkout could
    carry modules that no longer exist)."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(out)])
    [built] = out.glob("fashion_mnist_studio-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; its python."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # The system's pip installs into the environment it runs in. --ignore-installed: the editable
    # install the environment sees through the system's packages must not count as installed.
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         "--disable-pip-version-check", "-q", str(wheel)])
    return python


def outside_env(tmp_path) -> dict:
    """The environment for a command run as a user would, away from the checkout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FMNIST_DB", "FMNIST_RAY_ADDRESS")}
    return {**env, "FMNIST_HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_the_wheel_holds_every_subpackage_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(ROOT).as_posix() for package in PACKAGES if (ROOT / package).is_dir()
                for path in (ROOT / package).rglob("*")
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}
    assert {"fmnist/__main__.py", "fmnist/cli/__init__.py", "fmnist/static/live_chart.js",
            "fmnist/migrations/versions/0003_people_name_key.py"} <= expected
    assert not expected - names, f"left out of the wheel: {sorted(expected - names)}"


def test_the_installed_wheel_runs_help_and_a_tiny_training_from_another_folder(installed, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = outside_env(tmp_path)
    where = run([str(installed), "-c", "import fmnist, fmnist.cli; print(fmnist.__file__); print(fmnist.cli.__file__)"],
                cwd=folder, env=env).stdout.split()
    site = installed.parent.parent.resolve()
    assert all(Path(path).resolve().is_relative_to(site) for path in where), f"not the installed copy: {where}"

    shown = run([str(installed), "-m", "fmnist", "--help"], cwd=folder, env=env).stdout
    assert "train" in shown and "export" in shown

    # The training process is started with the same interpreter, so it runs the installed copy too.
    trained = run([str(installed), "-m", "fmnist", "train", "--layers", "16", "--epochs", "1", "--limit", "500",
                   "--val-split", "0", "--batch-size", "64"], cwd=folder, env=env).stdout
    result = json.loads([line for line in trained.splitlines() if line.startswith("{")][-1])
    assert result["status"] == "finished" and 0 < result["test_acc"] <= 1, result
    assert (tmp_path / "home" / "runs.sqlite").is_file(), "the run went to FMNIST_HOME"

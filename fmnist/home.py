"""Where the app keeps its runs, models and caches: $FMNIST_HOME, default ./runs."""

import os
from pathlib import Path


def home_dir() -> Path:
    home = Path(os.environ.get("FMNIST_HOME", "runs")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home

"""Where the app keeps its runs, models and caches: $FMNIST_HOME, default ./runs."""

import os
from pathlib import Path


class StoreError(RuntimeError):
    """The app's folder or its run store cannot be used; the message names the file or folder and what to do."""


def home_dir() -> Path:
    home = Path(os.environ.get("FMNIST_HOME", "runs")).resolve()
    if home.exists() and not home.is_dir():
        raise StoreError(f"FMNIST_HOME={home} is a file, not a folder. Point FMNIST_HOME at a folder "
                         "(it is created if missing) or move that file away. Nothing was changed.")
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)  # its runs and the class' password hashes: the owner's only
    except OSError as e:
        raise StoreError(f"The app's folder {home} cannot be created ({e.strerror or e}). Point FMNIST_HOME at a "
                         "folder you can write to.") from e
    return home

"""Where the app keeps its runs and models, $FMNIST_HOME (default ./runs), and its caches: $FMNIST_CACHE,
default the home's cache/ folder."""

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


def cache_dir() -> Path:
    """What only saves time and serves any home: the decoded dataset, JAX's compiled training steps (a
    store's own, such as the raw pixels' projections, stay in its home's cache/).
    $FMNIST_CACHE shares one cache between several homes (a class's and a person's on one machine, or
    the test suite's many), each entry named by what it was made from; default the home's cache/."""
    cache = os.environ.get("FMNIST_CACHE")
    return Path(cache).resolve() if cache else home_dir() / "cache"

"""Where the test images land: 2-D projections of a run's last hidden layer, and of the raw pixels
for comparison, kept in files so each is computed once.

Pure side (numpy and the standard library). PCA is computed here at once; t-SNE, which takes
tens of seconds, is a run of its own, of kind projection (fmnist.jobs.projection, whose work is
fmnist.inside.project_run): queued and computed in its own process, so that no page waits for it
and no server restart loses it, with its stage and progress in the store like any run's.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.runs import Run, RunKind
from fmnist.store import RunStore, save_atomically

PCA, TSNE = "pca", "tsne"
METHODS = {PCA: "PCA", TSNE: "t-SNE"}
# The t-SNE settings, chosen to finish within a minute on this project's 2 shared cores
# (docs/performance.md, "Inside"): openTSNE's FFT-accelerated gradients, the
# usual perplexity 30 on the first 50 principal components, 250 iterations of early exaggeration
# (which forms the clusters) and 250 more to spread them.
TSNE_SETTINGS = dict(perplexity=30, pca_dims=50, exaggeration_iter=250, iter=250, seed=0)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows of x, as (N, 2) float32.

    Through the d×d covariance rather than an SVD of the N×d data: 10,000 rows of at most a
    few thousand columns. Each axis' sign is fixed (its largest loading positive) so the same
    data always gives the same picture.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    centred = x - x.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, ::-1][:, :2]
    top *= np.sign(top[np.argmax(np.abs(top), axis=0), [0, 1]])
    return (centred @ top).astype(np.float32)


def pca_reduce(x: np.ndarray, dims: int) -> np.ndarray:
    """x on its first `dims` principal components (all of them when x has fewer columns)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    centred = x - x.mean(axis=0)
    if x.shape[1] <= dims:
        return centred
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return centred @ vectors[:, ::-1][:, :dims]


# --- the files: one per run and method, and the pixels' once per store ---

def run_projection_path(store: RunStore, run_id: int, method: str) -> Path:
    return store.run_dir(run_id) / f"projection-{method}.npz"


def pixels_projection_path(store: RunStore, method: str) -> Path:
    return store.home / "cache" / f"pixels-{method}.npz"


def model_version(store: RunStore, run_id: int) -> int:
    """The model file's modification time: a projection made from another version of it is stale."""
    path = store.model_path(run_id)
    return path.stat().st_mtime_ns if path.is_file() else 0


def save_projection(path: Path, points: np.ndarray, version: int = 0, **meta) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file, not a name: np.savez would add its own suffix to a name
            np.savez(file, points=np.asarray(points, np.float32), version=version, meta=json.dumps(meta))

    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(path, write)


@dataclass(frozen=True)
class Projection:
    points: np.ndarray  # (N, 2)
    meta: dict  # how it was made: layer, settings, seconds


def read_projection(path: Path, n_points: int, version: int = 0) -> Projection | None:
    """The stored projection, or None when it is missing, damaged, of another size or of another model version."""
    try:
        with np.load(path, allow_pickle=False) as data:
            points, stored_version, meta = data["points"], int(data["version"]), json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if points.shape != (n_points, 2) or stored_version != version or not np.isfinite(points).all():
        return None
    return Projection(points, meta)


def pixels_pca(store: RunStore, images: np.ndarray) -> Projection:
    """The raw pixels' PCA (uint8 images (N, 28, 28)), computed once per store: no model involved."""
    path = pixels_projection_path(store, PCA)
    found = read_projection(path, len(images))
    if found is None:
        save_projection(path, pca_2d(images.reshape(len(images), -1) / 255.0))
        found = read_projection(path, len(images))
    return found


# --- the t-SNE's run ---

def latest_projection(store: RunStore, run_id: int) -> Run | None:
    """The run's newest projection run (queued, running or ended), or None when none was ever started.
    A store from before projections were runs has none: its projections' files are read as they are."""
    return next((run for run in reversed(store.children(run_id)) if run.kind == RunKind.PROJECTION), None)

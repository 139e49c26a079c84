"""Fashion-MNIST's images: find the real files, validate them against fmnist.dataset.FASHION_MNIST,
cache a decoded copy.

Search order: $FMNIST_DATA, Debian's dataset-fashion-mnist, the Keras cache,
then the Keras download. A set $FMNIST_DATA that holds no valid dataset is an
error, never a silent fallback.
"""

import gzip
import hashlib
import json
import os
import shutil
import urllib.request
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fmnist.dataset import FASHION_MNIST, DatasetInfo
from fmnist.home import StoreError, cache_dir

# The four original IDX files: name, magic number, and the shape the description says they hold.
FILES = {
    "x_train": ("train-images-idx3-ubyte.gz", 2051, (FASHION_MNIST.train_size, *FASHION_MNIST.image_shape)),
    "y_train": ("train-labels-idx1-ubyte.gz", 2049, (FASHION_MNIST.train_size,)),
    "x_test": ("t10k-images-idx3-ubyte.gz", 2051, (FASHION_MNIST.test_size, *FASHION_MNIST.image_shape)),
    "y_test": ("t10k-labels-idx1-ubyte.gz", 2049, (FASHION_MNIST.test_size,)),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = (
    "How to get it: on Debian/Ubuntu run `sudo apt-get update && sudo apt-get install -y "
    "dataset-fashion-mnist` (installs the four files under /usr/share/datasets/fashion-mnist), "
    "or put the four original files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder and set FMNIST_DATA to it, "
    "or run once with internet access so Keras downloads them to ~/.keras/datasets/fashion-mnist."
)


class DatasetError(RuntimeError):
    """The dataset is missing or unreadable; the message says how to get it."""


@dataclass(frozen=True)
class Dataset:
    """The images and labels, with the description (shape, class names) everything downstream reads."""
    x_train: np.ndarray  # uint8 (train images, height, width)
    y_train: np.ndarray  # uint8 labels, 0 to info.num_classes - 1
    x_test: np.ndarray  # uint8 (test images, height, width)
    y_test: np.ndarray
    source: str
    note: str | None = None  # what people should know, e.g. that the decoded copy could not be saved
    info: DatasetInfo = FASHION_MNIST

    def __post_init__(self):
        for name in ("x_train", "x_test"):
            found = tuple(getattr(self, name).shape[1:])
            if found != self.info.image_shape:
                raise DatasetError(f"{self.source}: {name} holds {found} images, {self.info.name} has {self.info.image_shape}.")


def keras_cache_dir() -> Path:
    keras_home = os.environ.get("KERAS_HOME", str(Path.home() / ".keras"))
    return Path(keras_home) / "datasets" / "fashion-mnist"


def read_idx(path: Path, magic: int, shape: tuple) -> np.ndarray:
    """Read one gzipped IDX file and check its magic number, counts and size."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetError(f"{path} is corrupt or truncated ({e}).") from e
    header_len = 4 * (1 + len(shape))
    if len(raw) < header_len:
        raise DatasetError(f"{path} is truncated: no IDX header.")
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if header[0] != magic:
        raise DatasetError(f"{path} is not an IDX file of this kind (magic {header[0]}, expected {magic}).")
    found = tuple(int(n) for n in header[1:])
    if found != shape:
        raise DatasetError(f"{path} holds shape {found}, expected {shape}.")
    body = raw[header_len:]
    if len(body) != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: {len(body)} bytes of data, expected {int(np.prod(shape))}.")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_folder(folder: Path) -> Dataset:
    missing = [name for name, _, _ in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"{folder} lacks {', '.join(missing)}.")
    arrays = {key: read_idx(folder / name, magic, shape) for key, (name, magic, shape) in FILES.items()}
    for key in ("y_train", "y_test"):
        if arrays[key].max() >= FASHION_MNIST.num_classes:
            raise DatasetError(f"{folder / FILES[key][0]} has labels outside 0-{FASHION_MNIST.num_classes - 1}.")
    return Dataset(**arrays, source=str(folder))


def source_fingerprint(folder: Path) -> str:
    stats = [(name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns) for name, _, _ in FILES.values()]
    return hashlib.sha1(json.dumps([str(folder.resolve()), stats]).encode()).hexdigest()[:16]


def load_cached(folder: Path) -> Dataset:
    """Decode the folder once; later loads read plain .npy files (a few tens of ms).

    The cache only saves time: when it cannot be written (a full disk, a folder that cannot
    be made), the decoded arrays are used as they are and the dataset's note says so.
    """
    try:
        cache = cache_dir() / f"fashion-mnist-{source_fingerprint(folder)}"
        cached = (cache / "done").exists()
    except StoreError as e:
        cache, cached = None, False
        problem = str(e)
    if cached:
        arrays = {key: np.load(cache / f"{key}.npy", allow_pickle=False) for key in FILES}
        return Dataset(**arrays, source=str(folder))
    dataset = read_folder(folder)
    if cache is not None:
        try:
            write_cache(cache, dataset, folder)
            return dataset
        except OSError as e:
            problem = f"{e.strerror or e} in {cache}"
    note = (f"The decoded copy of the dataset could not be saved ({problem}), so it is decoded again "
            "at each start (about half a second). Everything else works.")
    warnings.warn(note, stacklevel=2)  # the CLI and a training's log show it; the app shows dataset.note
    return replace(dataset, note=note)


def write_cache(cache: Path, dataset: Dataset, folder: Path) -> None:
    """Each array to a temporary file, then into place; a failed write leaves no partial file."""
    cache.mkdir(parents=True, exist_ok=True)
    for key in FILES:
        tmp = cache / f"{key}.tmp.npy"
        try:
            np.save(tmp, getattr(dataset, key))
            os.replace(tmp, cache / f"{key}.npy")
        finally:
            tmp.unlink(missing_ok=True)
    (cache / "done").write_text(str(folder))


def candidate_folders() -> list[Path]:
    return [DEBIAN_DIR, keras_cache_dir()]


# Where Keras' own fashion_mnist.load_data() downloads from: the files land in its cache, which both share.
DOWNLOAD_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def download_with_keras() -> Path:
    """Fetch the four files into Keras' dataset cache, as Keras' fashion_mnist.load_data() does
    (needs internet). Plain urllib: loading the data never needs TensorFlow."""
    folder = keras_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, _, _ in FILES.values():
        if not (folder / name).is_file():
            tmp = folder / f"{name}.part"
            try:
                with urllib.request.urlopen(DOWNLOAD_URL + name, timeout=60) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out)
                os.replace(tmp, folder / name)
            finally:
                tmp.unlink(missing_ok=True)
    return folder


def load_dataset() -> Dataset:
    """The real Fashion-MNIST, from the first place that has it."""
    chosen = os.environ.get("FMNIST_DATA")
    if chosen:
        try:
            return load_cached(Path(chosen))
        except (DatasetError, OSError) as e:
            raise DatasetError(f"FMNIST_DATA={chosen} holds no valid Fashion-MNIST: {e} {HOW_TO_GET}") from e
    problems = []
    for folder in candidate_folders():
        if not folder.exists():
            continue
        try:
            return load_cached(folder)
        except (DatasetError, OSError) as e:
            problems.append(str(e))
    try:
        return load_cached(download_with_keras())
    except Exception as e:  # any network or file error: the message below says what to do
        problems.append(f"the Keras download failed ({type(e).__name__}: {e})")
    raise DatasetError("Fashion-MNIST was not found: " + "; ".join(problems) + ". " + HOW_TO_GET)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, height, width) -> float32 (N, height, width, 1) in 0-1, as the seed normalised it."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]



def examples_per_class(labels: np.ndarray, per_class: int, seed: int = 0, num_classes: int = FASHION_MNIST.num_classes) -> list[np.ndarray]:
    """For each class (0 to num_classes - 1), `per_class` random indices of images with that label."""
    rng = np.random.default_rng(seed)
    return [rng.choice(np.flatnonzero(labels == label), per_class, replace=False) for label in range(num_classes)]


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """k disjoint index sets covering every image, each with (nearly) the same class mix."""
    if not 2 <= k <= np.bincount(labels).min():
        raise ValueError(f"folds: from 2 to {np.bincount(labels).min()} (the smallest class size), got {k}")
    rng = np.random.default_rng(seed)
    folds = [[] for _ in range(k)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        for fold, chunk in zip(folds, np.array_split(members, k)):
            fold.append(chunk)
    return [np.sort(np.concatenate(fold)) for fold in folds]

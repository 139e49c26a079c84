"""fmnist.data: finding, validating and caching Fashion-MNIST.

Every test gets its own FMNIST_HOME and KERAS_HOME under tmp_path, no FMNIST_DATA,
no candidate folders and a Keras download that fails, so nothing touches the
network, ~/.keras or the repository's ./runs unless a test says otherwise.
"""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import fmnist.data as data
from fmnist.data import DatasetError, load_dataset, read_folder, read_idx, to_model_input
from fmnist.dataset import FASHION_MNIST

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_real_data = pytest.mark.skipif(
    not all((REAL_DIR / name).is_file() for name, _, _ in data.FILES.values()),
    reason=f"the real Fashion-MNIST files are not in {REAL_DIR} (apt-get install dataset-fashion-mnist)",
)

# Tiny stand-ins for the four files: same names and magic numbers, few items.
SMALL_SHAPES = {"x_train": (20, 28, 28), "y_train": (20,), "x_test": (10, 28, 28), "y_test": (10,)}
SMALL_FILES = {key: (name, magic, SMALL_SHAPES[key]) for key, (name, magic, _) in data.FILES.items()}


class NoNetwork:
    """Stands in for download_with_keras: always fails, counts the attempts."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        raise OSError("no network")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.delenv("FMNIST_CACHE", raising=False)  # the suite's shared cache (conftest): here each test's own
    monkeypatch.setattr(data, "candidate_folders", lambda: [])
    download = NoNetwork()
    monkeypatch.setattr(data, "download_with_keras", download)
    return download


@pytest.fixture
def small(monkeypatch):
    """Shrink the expected shapes so fixture files stay a few kB."""
    monkeypatch.setattr(data, "FILES", SMALL_FILES)


def idx_bytes(magic: int, array: np.ndarray, dims=None) -> bytes:
    """A raw IDX file: big-endian magic, one uint32 per dimension, then the uint8 body."""
    dims = array.shape if dims is None else dims
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gz(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(raw))
    return path


def small_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in SMALL_SHAPES.items():
        if key.startswith("y"):
            arrays[key] = (np.arange(shape[0]) % 10).astype(np.uint8)  # every class present
            rng.shuffle(arrays[key])
        else:
            arrays[key] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return arrays


def make_folder(folder: Path, seed: int = 0) -> dict:
    """Write a valid small dataset into folder; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = small_arrays(seed)
    for key, (name, magic, _) in SMALL_FILES.items():
        write_gz(folder / name, idx_bytes(magic, arrays[key]))
    return arrays


def assert_same(dataset, arrays: dict) -> None:
    for key, expected in arrays.items():
        got = getattr(dataset, key)
        assert got.dtype == np.uint8, key
        np.testing.assert_array_equal(got, expected, err_msg=key)


def cache_done_files() -> list:
    return sorted((Path(os.environ["FMNIST_HOME"]) / "cache").glob("fashion-mnist-*/done"))


# --- the real files -------------------------------------------------------------------------


@needs_real_data
def test_real_dataset_shapes_types_labels_and_class_names(monkeypatch):
    monkeypatch.setenv("FMNIST_DATA", str(REAL_DIR))
    ds = load_dataset()
    assert ds.x_train.shape == (60000, 28, 28)
    assert ds.y_train.shape == (60000,)
    assert ds.x_test.shape == (10000, 28, 28)
    assert ds.y_test.shape == (10000,)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(ds, key).dtype == np.uint8, key
    assert np.bincount(ds.y_train, minlength=11).tolist() == [6000] * 10 + [0]
    assert np.bincount(ds.y_test, minlength=11).tolist() == [1000] * 10 + [0]
    assert ds.x_train.max() > 0 and ds.x_test.max() > 0, "images are not blank"
    assert Path(ds.source) == REAL_DIR
    assert FASHION_MNIST.class_names == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )


@needs_real_data
def test_real_dataset_second_load_comes_from_the_cache(monkeypatch):
    monkeypatch.setenv("FMNIST_DATA", str(REAL_DIR))
    assert cache_done_files() == []
    first = load_dataset()
    done = cache_done_files()
    assert len(done) == 1, "the first load writes one finished cache under FMNIST_HOME"
    assert done[0].is_relative_to(Path(os.environ["FMNIST_HOME"]))

    def no_decoding(folder):
        raise AssertionError(f"decoded {folder} again instead of reading the cache")

    monkeypatch.setattr(data, "read_folder", no_decoding)
    second = load_dataset()
    assert_same(second, {k: getattr(first, k) for k in ("x_train", "y_train", "x_test", "y_test")})
    assert second.source == first.source


@needs_real_data
def test_without_fmnist_data_the_first_candidate_holding_the_files_wins(tmp_path, monkeypatch, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(data, "candidate_folders", lambda: [empty, REAL_DIR])
    ds = load_dataset()
    assert Path(ds.source) == REAL_DIR
    assert ds.x_train.shape == (60000, 28, 28)
    assert isolated.calls == 0, "no download when a folder has the files"


# --- to_model_input -------------------------------------------------------------------------


def test_to_model_input_scales_to_float32_0_1_with_a_channel_axis():
    images = np.array([[[0, 255], [128, 51]], [[255, 255], [0, 0]]], dtype=np.uint8)
    x = to_model_input(images)
    assert x.dtype == np.float32
    assert x.shape == (2, 2, 2, 1)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x[0, 0, 1, 0] == 1.0 and x[0, 0, 0, 0] == 0.0
    np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)


def test_to_model_input_on_a_28x28_batch():
    images = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = 255
    x = to_model_input(images)
    assert (x.shape, x.dtype) == ((5, 28, 28, 1), np.float32)
    assert x[0, 0, 0, 0] == 1.0
    assert 0.0 <= x.min() and x.max() <= 1.0


# --- small fixtures: the happy path and the search order -----------------------------------


def test_small_valid_folder_loads_and_is_cached_under_fmnist_home(tmp_path, monkeypatch, small):
    folder = tmp_path / "good"
    arrays = make_folder(folder)
    monkeypatch.setenv("FMNIST_DATA", str(folder))
    ds = load_dataset()
    assert_same(ds, arrays)
    assert ds.source == str(folder)
    assert len(cache_done_files()) == 1


def test_fmnist_cache_shares_one_decoded_copy_between_homes(tmp_path, monkeypatch, small):
    folder = tmp_path / "good"
    arrays = make_folder(folder)
    monkeypatch.setenv("FMNIST_DATA", str(folder))
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "shared"))
    assert_same(load_dataset(), arrays)
    assert len(list((tmp_path / "shared").glob("fashion-mnist-*/done"))) == 1

    def no_decoding(folder):
        raise AssertionError(f"decoded {folder} again instead of reading the shared cache")

    monkeypatch.setattr(data, "read_folder", no_decoding)
    monkeypatch.setenv("FMNIST_HOME", str(tmp_path / "another home"))
    assert_same(load_dataset(), arrays)
    assert cache_done_files() == [], "nothing cached in the home itself"


def test_candidates_are_tried_in_order_skipping_missing_and_broken_folders(tmp_path, monkeypatch, small, isolated):
    broken = tmp_path / "broken"
    make_folder(broken, seed=1)
    (broken / SMALL_FILES["x_test"][0]).write_bytes(b"not gzip at all")
    scrambled = tmp_path / "scrambled"
    make_folder(scrambled, seed=1)
    _scrambled_gzip(scrambled)
    first, second = tmp_path / "first", tmp_path / "second"
    arrays = make_folder(first, seed=2)
    make_folder(second, seed=3)
    monkeypatch.setattr(data, "candidate_folders", lambda: [tmp_path / "absent", broken, scrambled, first, second])
    ds = load_dataset()
    assert ds.source == str(first)
    assert_same(ds, arrays)
    assert isolated.calls == 0


def test_the_keras_download_is_the_last_resort(tmp_path, monkeypatch, small):
    keras_dir = tmp_path / "keras-download"
    arrays = make_folder(keras_dir, seed=4)
    monkeypatch.setattr(data, "candidate_folders", lambda: [tmp_path / "absent"])
    monkeypatch.setattr(data, "download_with_keras", lambda: keras_dir)
    ds = load_dataset()
    assert ds.source == str(keras_dir)
    assert_same(ds, arrays)


# --- broken files ---------------------------------------------------------------------------


def _truncated_gzip(folder):
    path = folder / SMALL_FILES["x_train"][0]
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    return "x_train", "corrupt or truncated"


def _scrambled_gzip(folder):
    # Valid gzip header, garbage inside a compressed deflate block: zlib itself complains
    # (zlib.error, which is neither OSError nor EOFError).
    path = folder / SMALL_FILES["x_train"][0]
    images = (np.arange(20 * 28 * 28) % 7).astype(np.uint8).reshape(20, 28, 28)  # compressible
    raw = bytearray(gzip.compress(idx_bytes(2051, images)))
    for i in range(12, 20):  # the gzip header is 10 bytes
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return "x_train", "corrupt or truncated"


def _not_gzip(folder):
    path = folder / SMALL_FILES["y_train"][0]
    path.write_bytes(idx_bytes(2049, small_arrays()["y_train"]))  # right content, not compressed
    return "y_train", "corrupt or truncated"


def _wrong_magic(folder):
    write_gz(folder / SMALL_FILES["x_test"][0], idx_bytes(2049, small_arrays()["x_test"]))
    return "x_test", "magic 2049, expected 2051"


def _wrong_count(folder):
    images = small_arrays()["x_train"]
    write_gz(folder / SMALL_FILES["x_train"][0], idx_bytes(2051, images, dims=(19, 28, 28)))
    return "x_train", "holds shape (19, 28, 28), expected (20, 28, 28)"


def _short_body(folder):
    labels = small_arrays()["y_test"]
    write_gz(folder / SMALL_FILES["y_test"][0], idx_bytes(2049, labels[:7], dims=(10,)))
    return "y_test", "truncated: 7 bytes of data, expected 10"


def _no_header(folder):
    write_gz(folder / SMALL_FILES["y_train"][0], b"\x00\x00\x08")
    return "y_train", "no IDX header"


def _label_above_9(folder):
    labels = small_arrays()["y_train"]
    labels[3] = 10
    write_gz(folder / SMALL_FILES["y_train"][0], idx_bytes(2049, labels))
    return "y_train", "labels outside 0-9"


def _missing_file(folder):
    (folder / SMALL_FILES["y_test"][0]).unlink()
    return "y_test", None


BREAKAGES = [
    _truncated_gzip, _scrambled_gzip, _not_gzip, _wrong_magic, _wrong_count,
    _short_body, _no_header, _label_above_9, _missing_file,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_broken_folder_raises_dataset_error_naming_the_file_and_problem(tmp_path, monkeypatch, small, breakage):
    folder = tmp_path / "data"
    make_folder(folder)
    key, problem = breakage(folder)
    filename = SMALL_FILES[key][0]

    with pytest.raises(DatasetError) as direct:
        read_folder(folder)
    assert filename in str(direct.value)
    if problem:
        assert problem in str(direct.value)

    monkeypatch.setenv("FMNIST_DATA", str(folder))
    with pytest.raises(DatasetError) as loaded:
        load_dataset()
    message = str(loaded.value)
    assert f"FMNIST_DATA={folder}" in message
    assert filename in message
    if problem:
        assert problem in message
    assert "apt-get install" in message and "dataset-fashion-mnist" in message
    assert cache_done_files() == [], "a broken folder is never cached"


def test_read_idx_reads_a_valid_file_and_rejects_an_extra_byte(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    good = write_gz(tmp_path / "good.gz", idx_bytes(2049, labels))
    np.testing.assert_array_equal(read_idx(good, 2049, (10,)), labels)
    long = write_gz(tmp_path / "long.gz", idx_bytes(2049, labels, dims=(10,)) + b"\x00")
    with pytest.raises(DatasetError, match="11 bytes of data, expected 10"):
        read_idx(long, 2049, (10,))


def test_a_broken_fmnist_data_never_falls_back_to_other_folders(tmp_path, monkeypatch, small, isolated):
    broken, good = tmp_path / "broken", tmp_path / "good"
    make_folder(broken)
    _wrong_magic(broken)
    make_folder(good, seed=5)
    monkeypatch.setattr(data, "candidate_folders", lambda: [good])
    monkeypatch.setenv("FMNIST_DATA", str(broken))
    with pytest.raises(DatasetError, match="magic") as err:
        load_dataset()
    assert f"FMNIST_DATA={broken}" in str(err.value)
    assert "apt-get install" in str(err.value)
    assert isolated.calls == 0
    assert cache_done_files() == []


def test_a_missing_fmnist_data_folder_is_an_error(tmp_path, monkeypatch, small):
    good = tmp_path / "good"
    make_folder(good)
    monkeypatch.setattr(data, "candidate_folders", lambda: [good])
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="FMNIST_DATA=") as err:
        load_dataset()
    assert "apt-get install" in str(err.value)


def test_nothing_anywhere_and_no_network_says_how_to_get_the_data(tmp_path, monkeypatch, small, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(data, "candidate_folders", lambda: [tmp_path / "absent", empty])
    with pytest.raises(DatasetError) as err:
        load_dataset()
    message = str(err.value)
    assert "dataset-fashion-mnist" in message
    assert "FMNIST_DATA" in message
    assert "apt-get install" in message
    assert "no network" in message, "the download failure is reported"
    assert isolated.calls == 1


def test_every_problem_met_on_the_way_is_reported(tmp_path, monkeypatch, small):
    broken = tmp_path / "broken"
    make_folder(broken)
    _label_above_9(broken)
    monkeypatch.setattr(data, "candidate_folders", lambda: [broken])
    with pytest.raises(DatasetError) as err:
        load_dataset()
    assert "labels outside 0-9" in str(err.value)
    assert "Keras download failed" in str(err.value)


# --- the cache follows the files ------------------------------------------------------------


def test_rewritten_file_rebuilds_the_cache(tmp_path, monkeypatch, small):
    folder = tmp_path / "data"
    old = make_folder(folder, seed=6)
    monkeypatch.setenv("FMNIST_DATA", str(folder))
    assert_same(load_dataset(), old)
    assert len(cache_done_files()) == 1

    new_images = np.full(SMALL_SHAPES["x_test"], 7, dtype=np.uint8)
    path = folder / SMALL_FILES["x_test"][0]
    before = path.stat().st_mtime_ns
    write_gz(path, idx_bytes(2051, new_images))
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))

    again = load_dataset()
    np.testing.assert_array_equal(again.x_test, new_images)
    assert_same(again, {k: v for k, v in old.items() if k != "x_test"})
    assert len(cache_done_files()) == 2, "a new cache for the new files"

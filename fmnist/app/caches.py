"""What pages share and load once per server: the run store, the dataset, and a run's model when a page
needs one (the Keras side is imported only inside those loaders). A store fault is one clear message,
never a traceback."""


import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import streamlit as st

from fmnist.data import DatasetError, load_dataset
from fmnist.database import DB_ENV
from fmnist.evaluation import read_probabilities
from fmnist.home import StoreError, home_dir
from fmnist.projection import PCA, model_version, read_projection, run_projection_path
from fmnist.store import RunStore, open_store


def show_store_error(error: StoreError) -> None:
    st.error(f"**The run store cannot be used.** {error}", icon=":material/database_off:")


def store_errors_shown(function):
    """For fragments, which rerun on their own: a store fault shows its message in place."""
    @functools.wraps(function)
    def shown(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except StoreError as e:
            show_store_error(e)
    return shown


def cached_store(home: str) -> RunStore:
    """The store with its folders in home, on FMNIST_DB's database (or SQLite in home)."""
    return store_for(home, os.environ.get(DB_ENV, ""))


@st.cache_resource
def store_for(home: str, database: str) -> RunStore:
    return open_store(Path(home))


def get_store() -> RunStore:
    """The run store (opened once per server); raises StoreError, which streamlit_app.py shows."""
    return cached_store(str(home_dir()))


@st.cache_resource(show_spinner="Loading Fashion-MNIST…")
def get_dataset():
    """Loaded once per server. A DatasetError is not cached: install the data, press R, and it loads."""
    return load_dataset()


def dataset_or_message():
    """The dataset, or None after showing how to get it."""
    try:
        dataset = get_dataset()
    except DatasetError as e:
        st.error(f"**The Fashion-MNIST dataset is missing.** {e}", icon=":material/database_off:")
        return None
    if dataset.note:
        st.caption(dataset.note)
    return dataset


def dataset_or_stop():
    """The dataset, or the page ends after showing how to get it."""
    dataset = dataset_or_message()
    if dataset is None:
        st.stop()
    return dataset


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def cached_model(home: str, run_id: int, modified_ns: int):
    """One loaded Keras model per file version: a replaced file is loaded anew."""
    from fmnist.prediction import load_model  # TensorFlow loads here, when a model is needed

    return load_model(cached_store(home), run_id)


def load_run_model(run_id: int):
    """The run's model, cached; ModelFileError if its file is missing or corrupt (errors are not cached)."""
    store = get_store()
    path = store.model_path(run_id)
    modified_ns = path.stat().st_mtime_ns if path.is_file() else 0
    return cached_model(str(store.home), run_id, modified_ns)


@st.cache_resource(show_spinner="Opening the model up…", max_entries=8)
def cached_inside(home: str, run_id: int, modified_ns: int):
    from fmnist.inside import Inside  # TensorFlow: the model is loaded anyway

    return Inside(cached_model(home, run_id, modified_ns))


def load_run_inside(run_id: int):
    """The run's model opened up (fmnist.inside.Inside), cached with the model; ModelFileError for a
    missing or corrupt file, InsideError for a model that does not take 28×28 images to ten classes."""
    store = get_store()
    path = store.model_path(run_id)
    return cached_inside(str(store.home), run_id, path.stat().st_mtime_ns if path.is_file() else 0)


@st.cache_resource(show_spinner="Calibrating the unusual-picture check on held-out images…", max_entries=8)
def cached_outlier_check(home: str, run_id: int, modified_ns: int):
    from fmnist.outlier_check import HiddenAndOutput, run_check  # TensorFlow: the model is loaded anyway

    outputs = HiddenAndOutput(cached_model(home, run_id, modified_ns))
    return outputs, run_check(cached_store(home), run_id, outputs, get_dataset())


def load_run_outlier_check(run_id: int):
    """The run's model's last hidden layer and probabilities (fmnist.outlier_check.HiddenAndOutput) with
    its calibrated check (fmnist.outliers.OutlierCheck), cached with the model; ModelFileError, InsideError
    (a model that does not take 28×28 images to ten classes) or DatasetError (nothing to calibrate on)."""
    store = get_store()
    path = store.model_path(run_id)
    return cached_outlier_check(str(store.home), run_id, path.stat().st_mtime_ns if path.is_file() else 0)


def run_pca(run_id: int, dataset):
    """The run's PCA of its last hidden layer for the test images: from its folder, or computed once
    from its model (ModelFileError, InsideError)."""
    store = get_store()
    found = read_projection(run_projection_path(store, run_id, PCA), len(dataset.y_test), model_version(store, run_id))
    if found is None:
        from fmnist.inside import run_pca as compute_pca  # TensorFlow: only when the run has no PCA yet

        found = compute_pca(store, run_id, load_run_inside(run_id).model, dataset)
    return found


# --- uploads ---

def open_upload(data: bytes):
    """An uploaded picture as fmnist.imaging.open_image makes it (its work image), decoded once per file:
    the page's reruns (every widget change) find it in the cache. ImageError for a file that cannot be used,
    remembered too, so a bad file is not decoded again on every rerun either."""
    from fmnist.imaging import ImageError  # only the pages that take uploads load the imaging code

    found = decoded_upload(hashlib.sha256(data).hexdigest(), data)
    if isinstance(found, str):
        raise ImageError(found)
    return found


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Reading the picture…")
def decoded_upload(digest: str, _data: bytes):
    """Keyed by the file's hash (_data is not hashed again); a work image is at most 3.2 MB (fmnist.imaging)."""
    from fmnist.imaging import ImageError, open_image

    try:
        return open_image(_data)
    except ImageError as e:
        return str(e)


def run_probabilities(run_id: int, dataset) -> np.ndarray:
    """The run's test-set probabilities: stored with the run, or computed once from its model
    (ModelFileError if that cannot be loaded)."""
    store = get_store()
    probs = read_probabilities(store.probs_path(run_id), len(dataset.y_test), dataset.info.num_classes)
    if probs is None:
        from fmnist.prediction import probabilities_on_test_set  # TensorFlow: only for a run without stored ones

        probs = probabilities_on_test_set(store, run_id, dataset, load_run_model)
    return probs

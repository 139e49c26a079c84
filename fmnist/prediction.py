"""A trained model at work: loading a run's model, its test-set probabilities, one image's prediction.

The Keras side: the pages that need a model reach it through fmnist.app.caches, which
imports this module only when a model is really needed.
"""

import keras
import numpy as np

from fmnist.data import Dataset, to_model_input
from fmnist.evaluation import read_probabilities
from fmnist.runs import ModelFileError
from fmnist.store import RunStore, save_atomically


def load_model(store: RunStore, run_id: int) -> keras.Model:
    """The run's Keras model, loaded with safe_mode on; ModelFileError if it is missing or corrupt."""
    path = store.model_path(run_id)
    if not path.is_file():
        raise ModelFileError(f"run {run_id} has no model file ({path} is missing).")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # Keras raises many kinds for a damaged zip or config
        raise ModelFileError(f"run {run_id}'s model file {path} is unreadable ({type(e).__name__}: {e}).") from e


def predict_test(model, dataset: Dataset) -> np.ndarray:
    """The model's class probabilities for the dataset's test images (float32, test images × classes)."""
    return model.predict(to_model_input(dataset.x_test), batch_size=1024, verbose=0).astype(np.float32)


def probabilities_on_test_set(store: RunStore, run_id: int, dataset: Dataset, load=None) -> np.ndarray:
    """The run's class probabilities for the test images: read from its folder, or computed once
    from its model (load(run_id), by default load_model; it may raise ModelFileError) and saved there."""
    path = store.probs_path(run_id)
    probs = read_probabilities(path, len(dataset.y_test), dataset.info.num_classes)
    if probs is None:
        model = load(run_id) if load else load_model(store, run_id)
        probs = predict_test(model, dataset)
        save_atomically(path, lambda tmp: np.save(tmp, probs))
    return probs


def predict_image(model, image01: np.ndarray) -> np.ndarray:
    """The class probabilities for one (height, width) image in 0-1.

    predict_on_batch runs the model's compiled predict step (traced on its first call):
    much faster than an eager model(x), and than predict(), which builds a data
    pipeline on every call (docs/performance.md, "The app").
    """
    batch = image01[np.newaxis, :, :, np.newaxis]
    return np.asarray(model.predict_on_batch(batch))[0]

"""A run's model asked how unusual a picture is (fmnist.outliers): its last hidden layer and its
probabilities in one forward pass, the check calibrated on the run's held-out images once and kept
in the run's folder.

The Keras side: the Classify page reaches it through fmnist.app.caches when a model is loaded anyway.
"""

import keras
import numpy as np

from fmnist.data import Dataset, to_model_input
from fmnist.inside import check_shapes
from fmnist.outliers import (
    FILE,
    FIT_IMAGES,
    FLAGGED_SHARE,
    MEASURE,
    OutlierCheck,
    calibrate,
    held_out_images,
    item_pieces,
    pieces_limit,
    read_check,
    reference,
    save_check,
    unusualness,
)
from fmnist.projection import model_version
from fmnist.store import RunStore


class HiddenAndOutput:
    """The model's last hidden layer (what its output layer gets) beside its probabilities."""

    def __init__(self, model):
        check_shapes(model)
        self.model = keras.Model(model.inputs[0], [model.layers[-1].input, model.outputs[0]])

    def __call__(self, images01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) images in 0-1 -> features (N, d) and probabilities (N, 10)."""
        batch = images01[..., np.newaxis].astype(np.float32)
        if len(batch) <= 32:  # one picture on the page: the compiled step, no data pipeline
            features, probs = self.model.predict_on_batch(batch)
        else:
            features, probs = self.model.predict(batch, batch_size=1024, verbose=0)
        return np.asarray(features, np.float32).reshape(len(batch), -1), np.asarray(probs, np.float32)


def calibrated_check(outputs: HiddenAndOutput, dataset: Dataset, limit: int | None, val_split: float,
                     measure: str = MEASURE, share: float = FLAGGED_SHARE) -> OutlierCheck:
    """Fit the classes on training images the run trained on, set the pieces' limit and the threshold on the ones it did not."""
    held_out = held_out_images(len(dataset.y_train), limit, val_split)
    trained = np.setdiff1d(np.arange(min(limit or len(dataset.y_train), len(dataset.y_train))), held_out.indices)
    fit_on = trained[np.linspace(0, len(trained) - 1, min(FIT_IMAGES, len(trained))).astype(int)]
    features, _ = outputs(to_model_input(dataset.x_train[fit_on])[..., 0])
    against = reference(features, dataset.y_train[fit_on])
    held_images = to_model_input(dataset.x_train[held_out.indices])[..., 0]
    features, probs = outputs(held_images)
    scores = unusualness(measure, probs, features, against)
    pieces = item_pieces(held_images)
    limit = pieces_limit(pieces)
    threshold = calibrate(scores, share, flagged=pieces >= limit)
    flagged = (scores > threshold) | (pieces >= limit)
    return OutlierCheck(measure, threshold, float(flagged.mean()), len(scores), held_out.source, against, limit, float(np.mean(pieces >= limit)))


def run_check(store: RunStore, run_id: int, outputs: HiddenAndOutput, dataset: Dataset) -> OutlierCheck:
    """The run's check: from its folder, or calibrated now (a few seconds) and kept there."""
    path, version = store.run_dir(run_id) / FILE, model_version(store, run_id)
    check = read_check(path, version)
    if check is None:
        run = store.get(run_id)
        check = calibrated_check(outputs, dataset, run.train_limit, run.spec.val_split)
        save_check(path, check, version)
    return check

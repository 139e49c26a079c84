"""The time-to-accuracy bench's callback: the test set scored after every epoch, for its table only.

`TestAccuracyEachEpoch` serves `python -m fmnist bench --time-to-accuracy` and nothing else. It never
chooses anything: not an epoch, a checkpoint, a setting, nor when to stop; the training it watches
goes on exactly as it would without it, and what it records is printed as the table's figures and
thrown away (docs/performance.md, "Time to accuracy"). The app's runs choose on their validation
split only, as always.

Its own time is taken out of the training's: every time it reports is seconds since the click less
the seconds it spent scoring, so the table reads as the training would run with no one scoring it.
Imported once Keras has started on the row's backend (benchmarks.time_to_accuracy_fit).
"""

import time

import keras

from fmnist.data import Dataset
from fmnist.evaluation import test_metrics
from fmnist.prediction import predict_test


class TestAccuracyEachEpoch(keras.callbacks.Callback):
    """After each epoch: the seconds since the click (less scoring) and the model's accuracy on the
    test set, scored as the app scores a finished run (fmnist.prediction.predict_test). Also the
    seconds to the first batch's results, the first point a chart could show."""

    # Its batch hook only notes a time, once; on JAX Keras may call it off the training loop. Its epoch
    # hook runs in the loop, where Keras has put the weights back on the model (as for EarlyStopping).
    async_safe = True

    def __init__(self, click: float, dataset: Dataset):
        super().__init__()
        self.click, self.dataset = click, dataset
        self.scoring_s = 0.0
        self.first_batch_s: float | None = None
        self.epochs: list[dict] = []  # {"epoch", "s" (since the click, scoring taken out), "test_acc"}
        self.precision = "float32"

    def since_click(self) -> float:
        """Seconds from the click to now, less the seconds spent scoring the test set."""
        return time.time() - self.click - self.scoring_s

    def on_train_begin(self, logs=None):
        mixed = any(layer.compute_dtype == "bfloat16" for layer in self.model.layers)
        self.precision = "bfloat16" if mixed else "float32"

    def on_train_batch_end(self, batch, logs=None):
        if self.first_batch_s is None:
            if logs and "loss" in logs:
                float(logs["loss"])  # under JAX's asynchronous dispatch: once the batch is computed, not only sent
            self.first_batch_s = self.since_click()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.since_click()
        start = time.time()
        _, accuracy = test_metrics(predict_test(self.model, self.dataset), self.dataset.y_test)
        self.scoring_s += time.time() - start
        self.epochs.append({"epoch": epoch + 1, "s": round(seconds, 2), "test_acc": round(accuracy, 4)})

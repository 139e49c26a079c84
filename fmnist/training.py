"""The training engine: Keras `fit` with a callback that streams progress to the run store.

`train_run` is what a training process runs (see fmnist.worker); it records
curves as they come, honours stop requests, evaluates on the 10,000 test
images and saves the model.
"""

import os
import time
from pathlib import Path

import numpy as np

from fmnist.data import Dataset, load_dataset, to_model_input
from fmnist.evaluation import test_metrics
from fmnist.models import ModelSpec, build_model
from fmnist.store import RunStore

# Keras runs this many batches per call into the compiled graph: the Python
# overhead of each step, the larger part of a step for a small MLP on a CPU, is paid once
# for all of them. Callbacks then see every 16th batch, plenty for live curves.
STEPS_PER_EXECUTION = 16
UPDATE_EVERY_S = 0.25


def compile_model(model, spec: ModelSpec, steps_per_execution: int = STEPS_PER_EXECUTION):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec.learning_rate),
        loss=spec.loss,
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def training_arrays(dataset: Dataset, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = dataset.x_train, dataset.y_train
    if limit:
        x, y = x[:limit], y[:limit]
    return to_model_input(x), y


def make_streaming_callback(store: RunStore, run_id: int, progress=None):
    """A Keras callback that writes throttled batch points and every epoch to the store."""
    import keras

    class StreamToStore(keras.callbacks.Callback):
        # Keras then calls on_train_batch_end on a worker thread, off the training loop.
        async_safe = True

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            self.last_write = 0.0
            self.samples_done = 0
            self.batch_size = self.params.get("batch_size") or 32
            self.steps = self.params.get("steps")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self.epoch_start = time.perf_counter()
            self.points = []
            self.previous = (0, 0.0, 0.0)  # steps seen, running mean loss, running mean accuracy

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if now - self.last_write < UPDATE_EVERY_S:
                return
            self.last_write = now
            self.write_point(batch + 1, logs or {})

        def write_point(self, steps_seen: int, logs: dict):
            # Keras logs the epoch's running mean; the mean over the steps since the
            # last point is what makes a per-batch curve honest.
            seen, loss, acc = self.previous
            new = steps_seen - seen
            if new <= 0 or "loss" not in logs:
                return
            window_loss = (logs["loss"] * steps_seen - loss * seen) / new
            window_acc = (logs["accuracy"] * steps_seen - acc * seen) / new
            self.previous = (steps_seen, logs["loss"], logs["accuracy"])
            samples = self.samples_done + steps_seen * self.batch_size
            rate = samples / (time.perf_counter() - self.start)
            point = (self.epoch, steps_seen, float(window_loss), float(window_acc))
            if store.record_progress(run_id, self.epoch, steps_seen, self.steps, rate, [point]):
                self.model.stop_training = True
            if progress:
                progress(epoch=self.epoch, epochs=self.params["epochs"], step=steps_seen, steps=self.steps, samples_per_s=rate)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.samples_done += (self.steps or 0) * self.batch_size
            store.record_epoch(run_id, epoch + 1, logs, time.perf_counter() - self.epoch_start)

    return StreamToStore()


def engine_callbacks(store: RunStore, run_id: int, spec: ModelSpec, run_dir: Path, progress=None) -> list:
    import keras

    callbacks = [
        make_streaming_callback(store, run_id, progress),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False),
    ]
    if spec.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience, restore_best_weights=True))
    if spec.checkpoint:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"), monitor="val_loss", save_best_only=True, save_weights_only=True,
        ))
    return callbacks


def save_atomically(model, path: Path) -> None:
    tmp = path.with_name("tmp-" + path.name)
    model.save(tmp)
    os.replace(tmp, path)


def predict_test(model, dataset: Dataset) -> np.ndarray:
    return model.predict(to_model_input(dataset.x_test), batch_size=1024, verbose=0).astype(np.float32)


def train_run(store: RunStore, run_id: int, dataset: Dataset | None = None, progress=None) -> dict:
    """Train a run the queue has started; returns its summary. Failures are recorded, not raised."""
    run = store.get(run_id)
    try:
        import keras

        dataset = dataset or load_dataset()
        spec = run.spec
        keras.utils.set_random_seed(spec.seed)
        x, y = training_arrays(dataset, run.train_limit)
        model = compile_model(build_model(spec), spec)
        run_dir = store.run_dir(run_id)
        callbacks = engine_callbacks(store, run_id, spec, run_dir, progress)

        start = time.perf_counter()
        history = model.fit(
            x, y, batch_size=spec.batch_size, epochs=spec.epochs,
            validation_split=spec.val_split, callbacks=callbacks, verbose=0,
        )
        train_s = time.perf_counter() - start
        if spec.checkpoint and (run_dir / "best.weights.h5").exists():
            model.load_weights(run_dir / "best.weights.h5")

        probs = predict_test(model, dataset)
        np.save(run_dir / "test_probs.npy", probs)
        save_atomically(model, store.model_path(run_id))
        test_loss, test_acc = test_metrics(probs, dataset.y_test)
        epochs_done = len(history.history.get("loss", []))
        trained_samples = round(len(x) * (1 - spec.val_split)) * epochs_done
        status = "stopped" if store.stop_requested(run_id) else "finished"
        store.finish(
            run_id, status, test_loss=test_loss, test_acc=test_acc, train_s=train_s,
            samples_per_s=trained_samples / train_s if train_s else None,
        )
    except Exception as e:  # the run records why it failed; the process exits cleanly
        store.finish(run_id, "failed", error=f"{type(e).__name__}: {e}")
    return store.get(run_id).summary()

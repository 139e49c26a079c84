"""The training engine: Keras `fit` with a callback that streams progress to the run store.

`train_run` and `run_job` are what a training process runs (see fmnist.worker):
they record curves as they come, honour stop requests, evaluate and save the
model. This is the Keras side; the pages never import it.
"""

import math
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from fmnist.backends import PRECISION_LABELS, with_precision_resolved
from fmnist.data import Dataset, load_dataset, stratified_folds, to_model_input
from fmnist.database import StoreUnreachable
from fmnist.dataset import FASHION_MNIST, DatasetInfo
from fmnist.evaluation import test_metrics
from fmnist.keras_start import device_name
from fmnist.machine import cpu_name
from fmnist.models import ModelSpec
from fmnist.network import build_model
from fmnist.prediction import predict_test
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore, save_atomically

# Keras runs this many batches per call into the compiled graph: the Python
# overhead of each step, the larger part of a step for a small MLP on a CPU, is paid once
# for all of them. Callbacks then see every 16th batch, plenty for live curves.
STEPS_PER_EXECUTION = 16
UPDATE_EVERY_S = 0.25


def learning_rate(spec: ModelSpec, train_size: int):
    """The spec's learning rate, or a cosine decay from it to zero over the whole run."""
    if spec.lr_schedule != "cosine":
        return spec.learning_rate
    steps = math.ceil(train_size * (1 - spec.val_split) / spec.batch_size) * spec.epochs
    return keras.optimizers.schedules.CosineDecay(spec.learning_rate, decay_steps=steps)


def compile_model(model, spec: ModelSpec, train_size: int, steps_per_execution: int = STEPS_PER_EXECUTION):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate(spec, train_size)),
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


class StreamToStore(keras.callbacks.Callback):
    """Writes throttled per-batch points and every epoch to the store, and stops the
    training at the next write after someone asked for it.

    epoch_offset numbers a job's later parts after its earlier ones, so they form one curve;
    progress(epoch=, epochs=, step=, steps=, samples_per_s=), if given, hears every point.
    time_limit_s: the training stops there as if someone pressed Stop (a teacher's cap on a run's
    minutes, fmnist.access.Caps), checked at each point it writes.
    """

    # Keras then calls on_train_batch_end on worker threads, off the training loop (on backends whose
    # loop allows it: JAX does, TensorFlow calls it in the loop). The lock keeps those calls one at a time.
    async_safe = True

    def __init__(self, store: RunStore, run_id: int, batch_size: int, epoch_offset: int = 0, progress=None,
                 time_limit_s: float | None = None):
        super().__init__()
        self.store, self.run_id, self.batch_size = store, run_id, batch_size
        self.epoch_offset, self.progress, self.time_limit_s = epoch_offset, progress, time_limit_s
        self.lock = threading.Lock()

    def set_model(self, model):
        # Under JAX, reading `self.model` puts the training state back on the model first. From a
        # worker thread that races the training loop, whose next step may already have donated
        # those buffers ("Array has been deleted" on Stop): the batch hook uses this reference.
        super().set_model(model)
        self.trained = model

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.last_write = 0.0
        self.samples_done = 0
        self.steps = self.params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = self.epoch_offset + epoch + 1
        self.epoch_start = time.perf_counter()
        self.previous = (0, 0.0, 0.0)  # steps seen, running mean loss, running mean accuracy

    def on_train_batch_end(self, batch, logs=None):
        with self.lock:
            now = time.perf_counter()
            if now - self.last_write < UPDATE_EVERY_S:
                return
            self.last_write = now
            if self.time_limit_s is not None and now - self.start >= self.time_limit_s and not self.trained.stop_training:
                self.store.set_result(self.run_id, {"stopped_at_cap": True})  # why, for its page (Run.stopped_at_cap)
                self.store.request_stop(self.run_id)  # ends as stopped, keeping what it learnt
                self.trained.stop_training = True
            # With steps_per_execution, Keras numbers the epoch's last batch as if its final
            # chunk of 16 were full.
            self.write_point(min(batch + 1, self.steps or batch + 1), logs or {})

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
        if self.store.record_progress(self.run_id, self.epoch, steps_seen, self.steps, rate, [point]):
            self.trained.stop_training = True
        if self.progress:
            self.progress(epoch=self.epoch, epochs=self.epoch_offset + self.params["epochs"], step=steps_seen,
                          steps=self.steps, samples_per_s=rate)

    def on_epoch_end(self, epoch, logs=None):
        self.samples_done += (self.steps or 0) * self.batch_size
        self.store.record_epoch(self.run_id, self.epoch, logs or {}, time.perf_counter() - self.epoch_start)


def event_file(folder: Path) -> RecordWriter:
    """A TensorBoard event file named as TensorFlow names them, its version record written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}.v2"
    writer = RecordWriter(open(path, "wb"))
    writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    return writer


class EpochSummaries(keras.callbacks.Callback):
    """TensorBoard's per-epoch scalars, as Keras' TensorBoard callback names them (epoch_loss,
    epoch_accuracy, epoch_learning_rate under train/, the validation scores under validation/).

    Written with TensorBoard's own record writer: Keras' callback writes through TensorFlow, which
    under JAX means importing TensorFlow at every start, and its per-batch hook would make Keras
    call every callback inside the training loop, taking away JAX's asynchronous dispatch.
    """

    async_safe = True  # it has no batch hooks

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir, self.writers = log_dir, {}

    def write(self, part: str, epoch: int, scalars: dict) -> None:
        if part not in self.writers:
            self.writers[part] = event_file(self.log_dir / part)
        values = [summary_pb2.Summary.Value(tag=f"epoch_{name}", simple_value=float(value)) for name, value in scalars.items()]
        event = event_pb2.Event(wall_time=time.time(), step=epoch, summary=summary_pb2.Summary(value=values))
        self.writers[part].write(event.SerializeToString())
        self.writers[part].flush()  # TensorBoard shows each epoch as it ends

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {name: value for name, value in logs.items() if not name.startswith("val_")}
        train.setdefault("learning_rate", keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.write("train", epoch, train)
        validation = {name[4:]: value for name, value in logs.items() if name.startswith("val_")}
        if validation:
            self.write("validation", epoch, validation)

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class ReportToTrial(keras.callbacks.Callback):
    """Tells a search's trial (an Optuna trial) each epoch's validation accuracy, and ends the
    training as soon as the trial's pruner says it is not worth finishing."""

    # Its batch hook only notes the time: on JAX, Keras may call it off the training loop.
    async_safe = True

    def __init__(self, trial):
        super().__init__()
        self.trial = trial
        self.pruned = False
        self.best = None
        self.first_batch_at = None  # when the first batches' results came back (the search bench's overhead)

    def on_train_batch_end(self, batch, logs=None):
        if self.first_batch_at is None:
            self.first_batch_at = time.time()

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is None:
            return
        self.best = max(self.best or 0.0, float(accuracy))
        self.trial.report(float(accuracy), epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def engine_callbacks(store: RunStore, run_id: int, spec: ModelSpec, run_dir: Path, epoch_offset: int = 0, progress=None,
                     time_limit_s: float | None = None) -> list:
    """The engine's callbacks. None has a batch hook that must run inside the training loop, so
    on JAX Keras keeps dispatching steps while they run on worker threads."""
    callbacks = [
        StreamToStore(store, run_id, spec.batch_size, epoch_offset, progress, time_limit_s),
        EpochSummaries(run_dir / "tensorboard"),
    ]
    if spec.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience, restore_best_weights=True))
    if spec.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
    if spec.checkpoint:
        checkpoint = keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"), monitor="val_loss", save_best_only=True, save_weights_only=True,
        )
        checkpoint.async_safe = True  # it saves at epoch ends only: its batch hook does nothing
        callbacks.append(checkpoint)
    return callbacks


@contextmanager
def tensorflow_left_alone():
    """Keras imports TensorFlow wherever it is installed, whatever the backend: to seed it (for
    tf.data pipelines) and to recognise its types when saving a model. A JAX training here uses
    neither, and the import would add seconds to its start and to its end; on TensorFlow this does nothing.
    """
    from keras.src.utils import module_utils

    tensorflow, available = module_utils.tensorflow, module_utils.tensorflow._available
    if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
        tensorflow._available = False
    try:
        yield
    finally:
        tensorflow._available = available


def set_random_seed(seed: int) -> None:
    with tensorflow_left_alone():
        keras.utils.set_random_seed(seed)


def save_model(model, path: Path) -> None:
    with tensorflow_left_alone():
        save_atomically(path, model.save)


def on_gpu() -> bool:
    """Whether Keras computes on a GPU in this process."""
    return device_name(keras.backend.backend()) != cpu_name()


def precision_here(spec: ModelSpec) -> ModelSpec:
    """The spec with its precision as this machine trains it (auto resolved); said in the run's log."""
    resolved = with_precision_resolved(spec, on_gpu())
    how = "auto's choice on this machine" if spec.mixed_precision == "auto" else "as set"
    print(f"Precision: {PRECISION_LABELS[resolved.mixed_precision]} ({how})", file=sys.stderr, flush=True)
    return resolved


def fit(store: RunStore, run_id: int, spec: ModelSpec, x, y, log_dir: Path, epoch_offset: int = 0, progress=None,
        extra_callbacks=(), info: DatasetInfo = FASHION_MNIST, time_limit_s: float | None = None):
    """Build (for info's images and classes), compile and fit a model on (x, y) while streaming to the run;
    returns (model, epochs run, seconds). A spec on auto precision trains in what this machine's rule
    picks (fmnist.backends.auto_mixed_precision); time_limit_s: it stops there (StreamToStore)."""
    spec = precision_here(spec)
    set_random_seed(spec.seed)
    model = compile_model(build_model(spec, info), spec, len(x))
    callbacks = engine_callbacks(store, run_id, spec, log_dir, epoch_offset, progress, time_limit_s) + list(extra_callbacks)
    start = time.perf_counter()
    history = model.fit(
        x, y, batch_size=spec.batch_size, epochs=spec.epochs,
        validation_split=spec.val_split, callbacks=callbacks, verbose=0,
    )
    seconds = time.perf_counter() - start
    if spec.checkpoint and (log_dir / "best.weights.h5").exists():
        model.load_weights(log_dir / "best.weights.h5")
    return model, len(history.history.get("loss", [])), seconds


def record_engine(store: RunStore, run_id: int) -> None:
    """The backend Keras runs on in this process (fmnist.keras_start chose it) and its device."""
    backend = keras.backend.backend()
    store.record_engine(run_id, backend, device_name(backend))


def time_limit_s(run) -> float | None:
    """The seconds of training a run may use: its teacher's cap on minutes when it started (None: none)."""
    return run.max_minutes * 60 if run.max_minutes else None


def ended_status(store: RunStore, run_id: int) -> RunStatus:
    return RunStatus.STOPPED if store.stop_requested(run_id) else RunStatus.FINISHED


def train_run(store: RunStore, run_id: int, dataset: Dataset | None = None, progress=None, extra_callbacks=()) -> dict:
    """Train a run the queue has started; returns its summary. Failures are recorded, not raised.
    extra_callbacks: Keras callbacks beside the engine's (the time-to-accuracy bench's test scores)."""
    run = store.get(run_id)
    try:
        record_engine(store, run_id)
        dataset = dataset or load_dataset()
        x, y = training_arrays(dataset, run.train_limit)
        run_dir = store.run_dir(run_id)
        model, epochs_done, train_s = fit(store, run_id, run.spec, x, y, run_dir, progress=progress, extra_callbacks=extra_callbacks,
                                          info=dataset.info, time_limit_s=time_limit_s(run))

        probs = predict_test(model, dataset)
        save_atomically(store.probs_path(run_id), lambda tmp: np.save(tmp, probs))
        save_model(model, store.model_path(run_id))
        test_loss, test_acc = test_metrics(probs, dataset.y_test)
        trained_samples = round(len(x) * (1 - run.spec.val_split)) * epochs_done
        store.finish(
            run_id, ended_status(store, run_id), test_loss=test_loss, test_acc=test_acc, train_s=train_s,
            samples_per_s=trained_samples / train_s if train_s else None,
        )
    except StoreUnreachable:  # nowhere to record it: the process ends, and the run is marked interrupted
        raise
    except Exception as e:  # the run records why it failed; the process exits cleanly
        store.finish(run_id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
    return store.get(run_id).summary()


def train_trial(store: RunStore, run_id: int, trial, dataset: Dataset) -> tuple[RunStatus, float | None]:
    """Train one trial of a search (started by the queue) on its images, scored on validation
    accuracy only: no test-set evaluation and no saved model. Returns its status (finished,
    pruned, stopped or failed) and its best validation accuracy."""
    run = store.get(run_id)
    reporter = ReportToTrial(trial)
    try:
        record_engine(store, run_id)
        x, y = training_arrays(dataset, run.train_limit)
        _, epochs_done, train_s = fit(store, run_id, run.spec, x, y, store.run_dir(run_id), extra_callbacks=[reporter],
                                   info=dataset.info)
        status = RunStatus.PRUNED if reporter.pruned else ended_status(store, run_id)
        trial.set_user_attr("first_batch_at", reporter.first_batch_at)
        trained_samples = round(len(x) * (1 - run.spec.val_split)) * epochs_done
        store.finish(run_id, status, train_s=train_s, samples_per_s=trained_samples / train_s if train_s else None)
        return status, reporter.best
    except StoreUnreachable:  # nowhere to record it: the process ends, and the run is marked interrupted
        raise
    except Exception as e:  # recorded on the trial; the search goes on
        store.finish(run_id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
        return RunStatus.FAILED, None


def job_parts(job, dataset: Dataset):
    """(spec, x_train, y_train, x_score, y_score) for each part of a job.

    cv: stratified k-fold on the training images, scored on the held-out fold.
    seeds: the run's spec with seeds seed, seed+1, ..., scored on the test set.
    """
    x, y = training_arrays(dataset, job.train_limit)
    if job.kind == RunKind.CV:
        for held_out in stratified_folds(y, job.repeats, job.spec.seed):
            train = np.setdiff1d(np.arange(len(y)), held_out)
            yield job.spec, x[train], y[train], x[held_out], y[held_out]
    else:
        x_test = to_model_input(dataset.x_test)
        for i in range(job.repeats):
            yield replace(job.spec, seed=job.spec.seed + i), x, y, x_test, dataset.y_test


def run_job(store: RunStore, job_id: int, dataset: Dataset | None = None, progress=None) -> dict:
    """Train every part of a cv or seeds job, recording each part's accuracy as it comes."""
    job = store.get(job_id)
    if progress:  # count epochs over the whole job, not the part
        part_progress = progress
        progress = lambda **p: part_progress(**{**p, "epochs": job.total_epochs})  # noqa: E731
    try:
        record_engine(store, job_id)
        dataset = dataset or load_dataset()
        scores, train_s, limit = [], 0.0, time_limit_s(job)
        for i, (spec, x, y, x_score, y_score) in enumerate(job_parts(job, dataset)):
            log_dir = store.run_dir(job_id) / f"part-{i + 1}"
            model, _, seconds = fit(store, job_id, spec, x, y, log_dir, epoch_offset=i * spec.epochs, progress=progress,
                                    info=dataset.info, time_limit_s=None if limit is None else max(limit - train_s, 0.0))
            train_s += seconds
            if store.stop_requested(job_id):
                break  # a part cut short would skew the scores
            probs = model.predict(x_score, batch_size=1024, verbose=0)
            scores.append(test_metrics(probs, y_score)[1])
            store.record_scores(job_id, scores)
        store.finish(job_id, ended_status(store, job_id), train_s=train_s)
    except StoreUnreachable:  # nowhere to record it: the process ends, and the run is marked interrupted
        raise
    except Exception as e:  # the job records why it failed; the process exits cleanly
        store.finish(job_id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
    return store.get(job_id).summary()

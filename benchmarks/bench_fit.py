"""One side of `python -m fmnist bench`, in a process of its own: Keras' backend is fixed per process.

Trains each bench case for two epochs and times the second, so that tracing and compiling
the graph count against neither side; prints one JSON line per case. The bare side is
`model.fit` with Keras' defaults except verbose=0 (the default progress bar only slows it);
the engine side is the engine's compile and callbacks (fmnist.training). The figures and
their comparison are benchmarks.bench's.
"""

import json
import tempfile
import time

import keras

from benchmarks.bench import CASES, case_spec
from fmnist.data import load_dataset, to_model_input
from fmnist.keras_start import device_name
from fmnist.network import build_model
from fmnist.store import RunStore
from fmnist.training import compile_model, engine_callbacks, learning_rate, set_random_seed


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch, as the training loop sees them."""

    async_safe = True  # no batch hooks: on JAX it leaves the engine's dispatch as it is

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def bare_fit_seconds(spec, x, y) -> tuple[float, int]:
    set_random_seed(spec.seed)
    model = build_model(spec)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(spec, len(x))), loss=spec.loss, metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=spec.batch_size, epochs=2, callbacks=[timer], verbose=0)
    return timer.seconds[-1], 0


def engine_fit_seconds(spec, x, y, store: RunStore) -> tuple[float, int]:
    """Seconds of the timed epoch and how many live points the engine wrote in it."""
    set_random_seed(spec.seed)
    run_id = store.create_run(spec, name="bench")
    model = compile_model(build_model(spec), spec, len(x))
    timer = EpochTimer()
    callbacks = engine_callbacks(store, run_id, spec, store.run_dir(run_id)) + [timer]
    model.fit(x, y, batch_size=spec.batch_size, epochs=2, callbacks=callbacks, verbose=0)
    points = sum(1 for b in store.batches(run_id) if b["epoch"] == 2)
    return timer.seconds[-1], points


def run_side(side: str, cases: list[int]) -> int:
    """Time each case's second epoch on this process's backend; one JSON line per case on stdout."""
    dataset = load_dataset()
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        for i in cases:
            spec, images = case_spec(i), CASES[i][3]
            x, y = to_model_input(dataset.x_train[:images]), dataset.y_train[:images]
            seconds, points = bare_fit_seconds(spec, x, y) if side == "bare" else engine_fit_seconds(spec, x, y, store)
            print(json.dumps({"case": i, "side": side, "backend": backend, "device": device_name(backend),
                              "samples_per_s": images / seconds, "live_updates_per_s": points / seconds}), flush=True)
    return 0

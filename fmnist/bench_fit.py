"""`python -m fmnist bench`: samples/s of a bare `model.fit` against the engine.

Both sides train the same model on the same images, alternating: the seed's
64-128-64-32 MLP at batch 32 and 256, and the Small CNN preset. Each fit runs two epochs and only the second is timed, so tracing
the graph is not counted against either side. The bare side is `model.fit`
with Keras' defaults except verbose=0 (the default progress bar only slows it).
"""

import json
import statistics
import sys
import tempfile
import time

import keras

from fmnist.data import load_dataset, to_model_input
from fmnist.evaluation import test_metrics
from fmnist.models import PRESETS, with_training
from fmnist.network import build_model
from fmnist.prediction import predict_test
from fmnist.store import RunStore
from fmnist.training import compile_model, engine_callbacks, learning_rate

MLP = PRESETS["Seed A: 64-128-64-32"]
# (name, spec, batch size, training images): the CNN on a fifth of the set keeps the bench short.
CASES = (
    ("MLP 64-128-64-32", MLP, 32, 60000),
    ("MLP 64-128-64-32", MLP, 256, 60000),
    ("Small CNN", PRESETS["Small CNN"], PRESETS["Small CNN"].batch_size, 12800),
)


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch, as the training loop sees them."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def bare_fit_seconds(spec, x, y) -> float:
    keras.utils.set_random_seed(spec.seed)
    model = build_model(spec)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(spec, len(x))), loss=spec.loss, metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=spec.batch_size, epochs=2, callbacks=[timer], verbose=0)
    return timer.seconds[-1]


def engine_fit_seconds(spec, x, y, store: RunStore) -> tuple[float, int]:
    """Seconds of the timed epoch and how many live points the engine wrote in it."""
    keras.utils.set_random_seed(spec.seed)
    run_id = store.create_run(spec, name="bench")
    model = compile_model(build_model(spec), spec, len(x))
    timer = EpochTimer()
    callbacks = engine_callbacks(store, run_id, spec, store.run_dir(run_id)) + [timer]
    model.fit(x, y, batch_size=spec.batch_size, epochs=2, callbacks=callbacks, verbose=0)
    points = sum(1 for b in store.batches(run_id) if b["epoch"] == 2)
    return timer.seconds[-1], points


def run_bench(args) -> int:
    start = time.perf_counter()
    dataset = load_dataset()
    load_s = time.perf_counter() - start
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        for name, spec, batch, images in CASES:
            spec = with_training(spec, batch_size=batch, val_split=0.0)
            x, y = to_model_input(dataset.x_train[:images]), dataset.y_train[:images]
            bare, engine, points = [], [], []
            for _ in range(args.repeats):
                bare.append(bare_fit_seconds(spec, x, y))
                seconds, written = engine_fit_seconds(spec, x, y, store)
                engine.append(seconds)
                points.append(written / seconds)
            bare_rate = len(x) / statistics.median(bare)
            engine_rate = len(x) / statistics.median(engine)
            results.append({
                "model": name, "batch": batch, "images": images, "bare_samples_per_s": round(bare_rate),
                "engine_samples_per_s": round(engine_rate), "ratio": round(engine_rate / bare_rate, 2),
                "live_updates_per_s": round(statistics.median(points), 1),
            })
            if not args.json:
                print(f"{name}, batch {batch}, {images:,} images: bare {bare_rate:,.0f} samples/s, engine {engine_rate:,.0f} "
                      f"samples/s, ratio {engine_rate / bare_rate:.2f}, live updates {statistics.median(points):.1f}/s", flush=True)

        model = compile_model(build_model(MLP), MLP, len(dataset.x_train))
        start = time.perf_counter()  # as a run ends: the first predict call includes tracing
        test_metrics(predict_test(model, dataset), dataset.y_test)
        eval_s = time.perf_counter() - start

    timings = f"dataset load {load_s:.3f} s; test-set evaluation (10,000 images) {eval_s:.3f} s"
    if args.json:
        for row in results:
            print(json.dumps(row))
        print(timings, file=sys.stderr)
    else:
        print(timings)
    return 0

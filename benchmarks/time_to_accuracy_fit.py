"""One training of `python -m fmnist bench --time-to-accuracy`, in a process of its own: Keras' backend
is fixed per process. `python -m benchmarks.time_to_accuracy_fit JOB`, JOB the row as JSON
(benchmarks.time_to_accuracy writes it); prints one JSON line of what it measured.

Two ways to train, each with benchmarks.accuracy_probe's callback beside it:

- engine: a run as the app trains it. The run created by the services, its slot in the queue claimed,
  then `fmnist.training.train_run` (the engine's compile and callbacks, its test score, the saved
  model). Cold, this process is the run's own from its start, as `python -m fmnist train` or a run the
  server spawns: the click came before the process started. Warm (JOB's "warm"), it is a warm
  trainer as fmnist.jobs.process.wait_warm makes one: Keras started and the dataset loaded, it
  prints "ready" and waits for the click's time on stdin.
- bare: the seed notebook's own code path, plain Keras on TensorFlow and none of the app: images
  scaled to 0-1, a Sequential Input-Flatten-Dense model, compile('adam',
  'sparse_categorical_crossentropy', ['accuracy']), fit with its epochs, batch size and validation
  split and a TensorBoard callback (the notebook logged to TensorBoard), then evaluate on the test
  set. verbose=0: the notebook's progress bar would only add the terminal's cost.

Its top imports no Keras and nothing heavy: the bare row's start is the notebook's.
"""

import json
import os
import sys
import tempfile


def app(job: dict) -> dict:
    """The engine row: the run trained the app's way, cold or by a warm trainer."""
    # What the server that starts the run has loaded (cold: this process is the run's, started at the click).
    from fmnist import services
    from fmnist.data import load_dataset
    from fmnist.keras_start import start_keras
    from fmnist.models import ModelSpec
    from fmnist.services import Actor
    from fmnist.store import open_store
    from fmnist.worker import this_process, wait_for_slot

    dataset = None
    if job["warm"]:
        start_keras(job["backend"])
        import fmnist.training  # noqa: F401  (the engine's imports, paid while waiting, as a warm trainer does)

        dataset = load_dataset()
        print("ready", flush=True)
        click = float(sys.stdin.readline())
    else:
        click = job["click"]
    store = open_store()
    run_id = services.start_training(store, Actor.local(), ModelSpec.from_dict(job["spec"]), name=job["row"],
                                     train_limit=job["images"], backend_setting=job["backend"], process=this_process())
    wait_for_slot(store, run_id)
    backend = start_keras(job["backend"])  # a warm trainer's is started already
    dataset = dataset or load_dataset()
    from benchmarks.accuracy_probe import TestAccuracyEachEpoch
    from fmnist.training import train_run

    probe = TestAccuracyEachEpoch(click, dataset)
    summary = train_run(store, run_id, dataset, extra_callbacks=[probe])
    finished_s = probe.since_click()
    run = store.get(run_id)
    if run.error:
        raise RuntimeError(f"the run failed: {run.error}")
    return measured(probe, backend, run.device, summary["test_acc"], finished_s)


def notebook(job: dict) -> dict:
    """The bare row: the seed notebook's code, plain Keras on TensorFlow."""
    click = job["click"]
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    from benchmarks.accuracy_probe import TestAccuracyEachEpoch
    from fmnist.data import load_dataset, to_model_input
    from fmnist.keras_start import device_name
    from fmnist.models import ModelSpec

    spec = ModelSpec.from_dict(job["spec"])
    dataset = load_dataset()
    images = job["images"] or len(dataset.x_train)
    x_train, y_train = to_model_input(dataset.x_train[:images]), dataset.y_train[:images]
    keras.utils.set_random_seed(spec.seed)
    model = keras.Sequential([keras.Input(shape=(*dataset.info.image_shape, 1)), keras.layers.Flatten(),
                              *[keras.layers.Dense(layer.units, activation=layer.activation) for layer in spec.layers],
                              keras.layers.Dense(dataset.info.num_classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probe = TestAccuracyEachEpoch(click, dataset)
    with tempfile.TemporaryDirectory() as logs:
        model.fit(x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size, validation_split=spec.val_split,
                  callbacks=[keras.callbacks.TensorBoard(log_dir=logs), probe], verbose=0)
        _, test_acc = model.evaluate(to_model_input(dataset.x_test), dataset.y_test, verbose=0)
    return measured(probe, "tensorflow", device_name("tensorflow"), float(test_acc), probe.since_click())


def measured(probe, backend: str, device: str, test_acc: float, finished_s: float) -> dict:
    return {"backend": backend, "device": device, "precision": probe.precision,
            "first_batch_s": None if probe.first_batch_s is None else round(probe.first_batch_s, 2),
            "curve": probe.epochs, "test_acc": round(test_acc, 4), "finished_s": round(finished_s, 2),
            "scoring_s": round(probe.scoring_s, 2)}


def main(argv=None) -> int:
    job = json.loads((sys.argv[1:] if argv is None else argv)[0])
    result = notebook(job) if job["how"] == "bare" else app(job)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

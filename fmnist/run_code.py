"""The code of a run: a standalone Python script (or a Jupyter notebook) that trains exactly this
run's model with plain Keras and numpy, no fmnist import, so a learner can take it home and run it.

The script mirrors what the engine does (fmnist.network.build_model from fmnist.models.layer_plan,
fmnist.training.fit): the same layers in the same order, the same seed, optimizer, learning rate
and schedule, batch size, validation split, early stopping, checkpoint, augmentation and mixed
precision, on the same Keras backend, the same first N training images; then it scores the test
set once and prints `test accuracy: 0.8853`. Pure side: it writes text, it imports no Keras.
"""

import json
from textwrap import dedent, indent

from fmnist.backends import mixed_precision_for
from fmnist.dataset import FASHION_MNIST
from fmnist.models import ModelSpec, layer_plan, stack_name
from fmnist.runs import Run, RunKind

# What the script cannot express, by spec field: none today; a newer field is named in CodeError.
EXPRESSIBLE = {"layers", "conv", "augment", "lr_schedule", "mixed_precision", "learning_rate", "epochs", "batch_size", "val_split",
               "seed", "early_stopping", "patience", "checkpoint", "optimizer", "loss"}
SCHEDULES = {"constant", "cosine", "plateau"}


class CodeError(ValueError):
    """A run whose code cannot be written (no such run, a search, one still training or without a model, settings the
    script cannot express); the message says which."""


def check_expressible(run: Run | None, run_id: int) -> Run:
    if run is None:
        raise CodeError(f"There is no run {run_id}.")
    if run.kind not in (RunKind.TRAIN, RunKind.TRIAL):
        raise CodeError(f"Run #{run.id} is a {run.kind} job, not one model: take the code of the run it repeats or of a trial.")
    if run.active:
        raise CodeError(f"Run #{run.id} is still {run.status}: its code is ready when it ends.")
    if run.kind == RunKind.TRAIN and not run.status.has_model:
        raise CodeError(f"Run #{run.id} {run.status} and kept no model: there is no run to take home (start it again to get its code).")
    spec = run.spec
    unknown = set(spec.to_dict()) - EXPRESSIBLE
    if unknown:
        raise CodeError(f"The script cannot express these settings of run #{run.id} yet: {', '.join(sorted(unknown))}.")
    if spec.optimizer != "adam":
        raise CodeError(f"The script cannot express the optimizer {spec.optimizer!r} of run #{run.id} (only Adam).")
    if spec.lr_schedule not in SCHEDULES:
        raise CodeError(f"The script cannot express the learning-rate schedule {spec.lr_schedule!r} of run #{run.id}.")
    return run


def uses_mixed_precision(spec: ModelSpec) -> bool:
    """Whether the run computes in bfloat16: as set, or auto as this machine's rule resolves it
    (fmnist.backends.mixed_precision_for), which is the rule the run trained by when it trained here."""
    return mixed_precision_for(spec)


def backend_of(run: Run) -> str:
    """The Keras backend that trained the run (the script uses the same, so its accuracy matches)."""
    if run.backend in ("jax", "tensorflow"):
        return run.backend
    return "tensorflow" if run.spec.conv or run.spec.augment else "jax"


def layer_lines(spec: ModelSpec) -> list[str]:
    """keras.layers calls, one per planned layer, with the engine's names and arguments."""
    dtype = ', dtype="mixed_bfloat16"' if uses_mixed_precision(spec) else ""
    lines = []
    for layer in layer_plan(spec):
        args = ", ".join(f"{key}={value!r}" for key, value in layer.args)
        lines.append(f"    keras.layers.{layer.type}({args}{', ' if args else ''}name={layer.name!r}{dtype}),")
    return lines


def sections(run: Run) -> list[tuple[str, str]]:
    """(comment, code) pairs, top to bottom: the script's paragraphs and the notebook's cells."""
    spec = run.spec
    limit = run.train_limit
    scored = (f"In the app it scored test accuracy {run.test_acc:.4f}; this script should print that within half a point."
              if run.test_acc is not None else f"In the app it is {run.status} with no test accuracy to compare yet.")
    images = f"the first {limit:,}" if limit else "all"
    callbacks = []
    if spec.early_stopping:
        callbacks.append(f'keras.callbacks.EarlyStopping(monitor="val_loss", patience={spec.patience}, restore_best_weights=True)')
    if spec.lr_schedule == "plateau":
        callbacks.append('keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)')
    if spec.checkpoint:
        callbacks.append('keras.callbacks.ModelCheckpoint("best.weights.h5", monitor="val_loss", save_best_only=True, save_weights_only=True)')
    if spec.lr_schedule == "cosine":
        learning_rate = dedent(f"""\
            # Cosine decay from the learning rate to zero over every training step of the run.
            steps = math.ceil(len(x_train) * (1 - {spec.val_split!r}) / {spec.batch_size}) * {spec.epochs}
            learning_rate = keras.optimizers.schedules.CosineDecay({spec.learning_rate!r}, decay_steps=steps)""")
    else:
        learning_rate = f"learning_rate = {spec.learning_rate!r}"
    return [
        (f"Run #{run.id} \"{run.name}\" of Fashion-MNIST Studio: a {stack_name(spec)} network, as a standalone script.\n"
         f"{scored}\nIt needs only numpy and Keras 3 (with JAX or TensorFlow installed); run it with `python run.py`.",
         dedent(f"""\
            import gzip
            import math
            import os
            from pathlib import Path

            # The backend that trained the run: the same one gives the same accuracy (set before Keras is imported).
            os.environ.setdefault("KERAS_BACKEND", {backend_of(run)!r})

            import keras
            import numpy as np""")),
        ("The data: Fashion-MNIST's four original files, from FMNIST_DATA or Debian's dataset-fashion-mnist,\n"
         "else Keras downloads them. Pixels become 0-1 floats with one channel, as the app feeds them.",
         dedent(f"""\
            CLASS_NAMES = {list(FASHION_MNIST.class_names)!r}


            def read_idx(path, count_dims):
                with gzip.open(path, "rb") as file:
                    data = file.read()
                shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(count_dims)]
                return np.frombuffer(data, np.uint8, offset=4 + 4 * count_dims).reshape(shape)


            folder = Path(os.environ.get("FMNIST_DATA", "/usr/share/datasets/fashion-mnist"))
            if (folder / "t10k-labels-idx1-ubyte.gz").is_file():
                x_train, y_train = read_idx(folder / "train-images-idx3-ubyte.gz", 3), read_idx(folder / "train-labels-idx1-ubyte.gz", 1)
                x_test, y_test = read_idx(folder / "t10k-images-idx3-ubyte.gz", 3), read_idx(folder / "t10k-labels-idx1-ubyte.gz", 1)
            else:
                (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
            x_train, y_train = x_train[:{limit!r}], y_train[:{limit!r}]  # the run trained on {images} training images
            x_train = (x_train.astype("float32") / 255.0)[..., np.newaxis]
            x_test = (x_test.astype("float32") / 255.0)[..., np.newaxis]""")),
        (f"The model: {len(spec.layers)} dense layer{'s' if len(spec.layers) != 1 else ''}"
         f"{f' after {len(spec.conv)} conv block' + ('s' if len(spec.conv) != 1 else '') if spec.conv else ''}, "
         "layer by layer as the app built it."
         + ("\nEach layer computes in bfloat16 and keeps its weights in float32 (mixed precision)." if uses_mixed_precision(spec) else ""),
         f"keras.utils.set_random_seed({spec.seed})  # the same seed: the same first weights and shuffles\n"
         "model = keras.Sequential([\n"
         f"    keras.Input(shape={FASHION_MNIST.input_shape!r}),\n"
         + "\n".join(layer_lines(spec)) + "\n"
         f"], name={stack_name(spec).replace('-', '_')!r})\n"
         "model.summary()"),
        ("Training: Adam on the training images, the last part of them held out to watch for overfitting.",
         learning_rate + "\n"
         f"model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss={spec.loss!r}, metrics=[\"accuracy\"])\n"
         f"callbacks = [{', '.join(callbacks)}]\n"
         f"history = model.fit(x_train, y_train, batch_size={spec.batch_size}, epochs={spec.epochs}, "
         f"validation_split={spec.val_split!r}, callbacks=callbacks, verbose=2)"
         + ('\nif Path("best.weights.h5").exists():  # the checkpoint kept the epoch with the lowest validation loss\n'
            '    model.load_weights("best.weights.h5")' if spec.checkpoint else "")),
        ("The test set, once, at the end: the score to compare with the app's.",
         dedent("""\
            probabilities = model.predict(x_test, batch_size=1024, verbose=0)
            print(f"test accuracy: {float(np.mean(probabilities.argmax(axis=1) == y_test)):.4f}")""")),
    ]


def script(run: Run) -> str:
    """The run as one Python script."""
    parts = []
    for comment, code in sections(run):
        parts.append(indent(comment, "# ", lambda line: True) + "\n" + code)
    return "\n\n".join(parts) + "\n"


def notebook(run: Run) -> str:
    """The run as a Jupyter notebook (nbformat 4 JSON): a Markdown cell and a code cell a section."""
    cells = []
    for comment, code in sections(run):
        cells.append({"cell_type": "markdown", "metadata": {}, "source": comment})
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": code})
    return json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
    }, indent=1) + "\n"


def code_of(store, run_id: int, as_notebook: bool = False) -> str:
    """A stored run's script or notebook; CodeError when there is none to write."""
    run = check_expressible(store.get(run_id), run_id)
    return notebook(run) if as_notebook else script(run)

"""Inside a trained model: every layer's output for one image, the first layer's weights, which
pixels drove a prediction (integrated gradients), and the last hidden layer's outputs for the test
images projected to 2-D.

The Keras side. It works on any loaded run model whose input is one FASHION_MNIST image (28×28×1) and whose output
is the ten class probabilities: the seed's MLPs, the presets, runs saved before this module existed,
and models with layers it does not know (it shows the layers it can and names the ones it skips).
"""

import functools
import time

import keras
import numpy as np
import tensorflow as tf

from fmnist.data import Dataset, to_model_input
from fmnist.dataset import FASHION_MNIST
from fmnist.inside_charts import InsideError, LayerOutput, Look, SkippedLayer, WeightImages, by_norm
from fmnist.prediction import load_model
from fmnist.projection import (
    PCA,
    TSNE,
    TSNE_SETTINGS,
    model_version,
    pca_2d,
    pca_reduce,
    pixels_projection_path,
    read_projection,
    run_projection_path,
    save_projection,
)
from fmnist.store import RunStore

# Active only while training: when predicting, their output is their input, so drawing it again
# would show nothing new.
TRAINING_ONLY = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "RandomTranslation", "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast",
    "RandomBrightness", "RandomCrop",
}
# Layers whose output this page draws: maps for (h, w, channels), a strip for (units,).
SHOWN = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization",
         "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dense"}
# Integrated gradients: the path from a black image to the image in this many steps, all in one batch.
IG_STEPS = 32


def check_shapes(model) -> None:
    """InsideError unless the model takes one FASHION_MNIST image and gives one probability per class."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as e:
        raise InsideError(f"the model has no fixed input ({e}).") from e
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != FASHION_MNIST.input_shape:
        raise InsideError(f"the model takes {', '.join(str(tuple(i.shape[1:])) for i in inputs)}, not one "
                          f"{FASHION_MNIST.size_text}×1 image, so the page cannot feed it test images.")
    if len(outputs) != 1 or tuple(outputs[0].shape[1:]) != (FASHION_MNIST.num_classes,):
        raise InsideError(f"the model outputs {', '.join(str(tuple(o.shape[1:])) for o in outputs)}, "
                          f"not the {FASHION_MNIST.num_classes} class probabilities.")


def layer_output(layer):
    """The layer's symbolic output in the model's graph, or None for a layer used more than once."""
    try:
        return layer.output
    except (AttributeError, ValueError):
        return None


class Inside:
    """One loaded model opened up. Builds its probes once (a sub-model that returns every shown
    layer's output, and a traced integrated-gradients step), so each image after the first costs
    a forward pass and one batch of gradients."""

    def __init__(self, model):
        if keras.backend.backend() != "tensorflow":  # the probes below are TensorFlow graphs
            raise InsideError(f"Keras runs on {keras.backend.backend()} in this process, and these views need TensorFlow: "
                              "start the app without KERAS_BACKEND set.")
        check_shapes(model)
        self.model = model
        self.layers, self.skipped = [], []
        for layer in model.layers[:-1]:  # the last is the output: its probabilities are shown on their own
            kind = type(layer).__name__
            output = layer_output(layer)
            if kind in TRAINING_ONLY:
                self.skipped.append(SkippedLayer(layer.name, kind, "active only while training"))
            elif kind == "Flatten":
                self.skipped.append(SkippedLayer(layer.name, kind, "lays the maps out as one vector: the same values"))
            elif kind not in SHOWN:
                self.skipped.append(SkippedLayer(layer.name, kind, "a layer this page does not know how to draw"))
            elif output is None or len(output.shape) not in (2, 4):
                self.skipped.append(SkippedLayer(layer.name, kind, "an output that is neither maps nor units"))
            else:
                self.layers.append((layer, output))
        image = model.inputs[0]
        probe = keras.Model(image, [output for _, output in self.layers] + [model.outputs[0]])
        self._forward = tf.function(lambda x: probe(x, training=False))

        @tf.function
        def integrated_gradients(x, target):
            # A midpoint Riemann sum from the black image (the baseline) to x: the attributions add
            # up to about p(x) - p(black) for the class, so a pixel's share is read as probability.
            alphas = (tf.range(IG_STEPS, dtype=tf.float32) + 0.5) / IG_STEPS
            path = alphas[:, None, None, None] * x
            with tf.GradientTape() as tape:
                tape.watch(path)
                chosen = tf.gather(tf.cast(model(path, training=False), tf.float32), target, axis=1)
            gradients = tf.cast(tape.gradient(chosen, path), tf.float32)
            return x[0, :, :, 0] * tf.reduce_mean(gradients, axis=0)[:, :, 0]

        self._integrated_gradients = integrated_gradients

    @functools.cached_property
    def weights(self) -> WeightImages | None:
        return first_layer_weights(self.model)

    def look(self, image01: np.ndarray, target: int | None = None) -> Look:
        """A (28, 28) image in 0-1 through every shown layer, its probabilities, and the integrated
        gradients of the predicted class (or `target`)."""
        x = tf.constant(np.asarray(image01, np.float32).reshape(1, *FASHION_MNIST.input_shape))
        results = [np.asarray(tf.cast(r, tf.float32))[0] for r in self._forward(x)]
        probs = results[-1]
        outputs = [LayerOutput(layer.name, type(layer).__name__, values) for (layer, _), values in zip(self.layers, results)]
        target = int(np.argmax(probs)) if target is None else int(target)
        saliency = np.asarray(self._integrated_gradients(x, tf.constant(target)))
        return Look(outputs, probs, saliency, target, self.skipped)


def first_layer_weights(model) -> WeightImages | None:
    """The first layer with weights on the image: a dense layer's units as 28×28 images (an MLP's),
    or a conv layer's filters as k×k images; the largest norm first. None when the first such layer is neither."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in TRAINING_ONLY or kind == "Flatten":
            continue
        if kind == "Conv2D":
            kernel = np.asarray(layer.get_weights()[0], np.float32)  # (k, k, 1 channel, filters)
            return by_norm(layer.name, "filters", np.moveaxis(kernel[:, :, 0, :], -1, 0))
        if kind == "Dense":
            kernel = np.asarray(layer.get_weights()[0], np.float32)  # (784 pixels, units), pixels row by row
            if kernel.shape[0] != FASHION_MNIST.pixels:
                return None
            return by_norm(layer.name, "units", kernel.T.reshape(-1, *FASHION_MNIST.image_shape))
        return None
    return None


def hidden_outputs(model, images: np.ndarray) -> np.ndarray:
    """The last hidden layer's outputs (what the output layer gets) for uint8 images (N, 28, 28): (N, d)."""
    check_shapes(model)
    hidden = keras.Model(model.inputs[0], model.layers[-1].input)
    values = hidden.predict(to_model_input(images), batch_size=1024, verbose=0)
    return np.asarray(values, np.float32).reshape(len(images), -1)


def hidden_layer_name(model) -> str:
    """The last layer before the output that changes what it gets (a dropout passes its input on when predicting)."""
    for layer in reversed(model.layers[:-1]):
        if type(layer).__name__ not in TRAINING_ONLY:
            return layer.name
    return "input"


# --- projections: PCA here and now, t-SNE in a run of its own (fmnist.jobs.projection) ---

def run_pca(store: RunStore, run_id: int, model, dataset: Dataset):
    """The run's PCA projection: from its folder, or computed (a second or two) and kept there."""
    path, version = run_projection_path(store, run_id, PCA), model_version(store, run_id)
    found = read_projection(path, len(dataset.y_test), version)
    if found is None:
        start = time.perf_counter()
        points = pca_2d(hidden_outputs(model, dataset.x_test))
        save_projection(path, points, version, layer=hidden_layer_name(model), seconds=time.perf_counter() - start)
        found = read_projection(path, len(dataset.y_test), version)
    return found


def tsne_2d(x: np.ndarray, progress=None) -> np.ndarray:
    """openTSNE's t-SNE of the rows of x with TSNE_SETTINGS; progress(stage, fraction) as it goes."""
    from openTSNE import TSNEEmbedding, affinity, initialization  # only the t-SNE process needs it

    settings = TSNE_SETTINGS
    total = settings["exaggeration_iter"] + settings["iter"]
    report = progress or (lambda stage, fraction: None)
    report("nearest neighbours", 0.02)
    reduced = pca_reduce(x, settings["pca_dims"])
    affinities = affinity.PerplexityBasedNN(reduced, perplexity=settings["perplexity"], n_jobs=-1,
                                            random_state=settings["seed"])
    # The neighbour search takes about a fifth of the time, the layout the rest.
    report("layout", 0.2)
    done = [0]

    def step(iteration, error, embedding):
        done[0] += 10
        report("layout", 0.2 + 0.8 * min(done[0] / total, 1.0))

    embedding = TSNEEmbedding(initialization.pca(reduced, random_state=settings["seed"]), affinities,
                              negative_gradient_method="fft", n_jobs=-1, random_state=settings["seed"])
    embedding = embedding.optimize(settings["exaggeration_iter"], exaggeration=12, momentum=0.5,
                                   callbacks=[step], callbacks_every_iters=10)
    embedding = embedding.optimize(settings["iter"], momentum=0.8, callbacks=[step], callbacks_every_iters=10)
    return np.asarray(embedding, np.float32)


def project_run(store: RunStore, run_id: int, dataset: Dataset, report=None) -> dict:
    """A projection run's work: the run's last hidden layer for the test images projected (PCA and
    t-SNE, each kept in its folder), then the raw pixels' t-SNE once per store. report(stage=...,
    fraction=...) hears the progress (whatever it raises, a Stop, ends the work); returns the seconds
    each t-SNE took (none when both were kept already)."""
    report = report or (lambda **fields: None)
    seconds = {}
    report(stage="loading the model", fraction=0.0)
    model = load_model(store, run_id)
    version, n = model_version(store, run_id), len(dataset.y_test)
    start = time.perf_counter()
    report(stage="the last hidden layer's outputs", fraction=0.01)
    hidden = hidden_outputs(model, dataset.x_test)
    layer = hidden_layer_name(model)
    if read_projection(run_projection_path(store, run_id, PCA), n, version) is None:
        save_projection(run_projection_path(store, run_id, PCA), pca_2d(hidden), version, layer=layer)
    pixels = pixels_projection_path(store, TSNE)
    pixels_needed = read_projection(pixels, n) is None
    # One bar for both: the run's t-SNE, then (the first time in a store) the pixels'.
    middle = 0.5 if pixels_needed else 1.0

    def part(stage_prefix, low, high):
        return lambda stage, fraction: report(stage=f"{stage_prefix}{stage}", fraction=low + (high - low) * fraction)

    if read_projection(run_projection_path(store, run_id, TSNE), n, version) is None:
        points = tsne_2d(hidden, part("t-SNE: ", 0.02, middle))
        seconds["run"] = time.perf_counter() - start
        save_projection(run_projection_path(store, run_id, TSNE), points, version, layer=layer,
                        seconds=seconds["run"], **TSNE_SETTINGS)
    if pixels_needed:
        start = time.perf_counter()
        points = tsne_2d(dataset.x_test.reshape(n, -1) / 255.0, part("the raw pixels' t-SNE (once for all runs): ", middle, 1.0))
        seconds["pixels"] = time.perf_counter() - start
        save_projection(pixels, points, seconds=seconds["pixels"], **TSNE_SETTINGS)
    return seconds

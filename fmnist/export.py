"""A run's model taken out of the app: ONNX, LiteRT (float32, float16, int8) and SavedModel files
made by Keras' own `model.export`, each checked in its own runtime against the Keras model before
it is kept, with its model card beside it.

The Keras side, on TensorFlow whatever backend trained the run: the converters that Keras uses
(tf2onnx for ONNX, TensorFlow's LiteRT converter) work from TensorFlow graphs, and a .keras file
written by a JAX training loads under TensorFlow with the same weights
(docs/engines.md, "Which engine trains a run"). `python -m fmnist export` starts Keras on TensorFlow before it imports this.

Every export is made in a temporary folder beside where it is kept and moved into place only once
its check has run: a conversion or check that fails leaves nothing behind.
"""

import contextlib
import functools
import logging
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fmnist.data import Dataset, to_model_input
from fmnist.dataset import FASHION_MNIST
from fmnist.export_formats import (
    ExportError,
    Variant,
    card_paths,
    copy_into_place,
    exports_dir,
    kept_path,
    model_version,
    place,
)
from fmnist.model_card import CHECK_IMAGES, build_card, card_json, card_markdown, compare
from fmnist.prediction import load_model
from fmnist.store import RunStore

# One float32 image batch of any size, named for what it is: the exported models' input.
SIGNATURE = [tf.TensorSpec((None, *FASHION_MNIST.input_shape), tf.float32, name="image")]
KERAS_FORMATS = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
# Training images (never test images) that show the int8 converter the range of each layer's values.
CALIBRATION_IMAGES = 300


# The app's augmentation layers (fmnist.models.layer_plan): they pass an image through unchanged when
# predicting, but Keras' ONNX and SavedModel exports call the model without training=False, and
# these layers' calls default to training, so an export would shift and flip every image it is given.
AUGMENTATION = ("RandomTranslation", "RandomFlip")


def inference_copy(model: keras.Model) -> keras.Model:
    """The model as it predicts, for export: computing in float32, with its weights (already float32
    in a mixed-precision model), without augmentation layers. Keras' ONNX export needs the float32
    policy, and a bfloat16 graph would carry casts into every format; the check then shows how far
    float32 answers are from the bfloat16 model's."""
    def in_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    predicting = [layer for layer in model.layers if type(layer).__name__ not in AUGMENTATION]
    if len(predicting) == len(model.layers) and all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    if not isinstance(model, keras.Sequential):  # not one of the app's own models: copied as it is, in float32
        copy = keras.models.clone_model(model, clone_function=in_float32)
        copy.set_weights(model.get_weights())
        return copy
    copy = keras.Sequential([keras.Input(model.inputs[0].shape[1:]), *(in_float32(layer) for layer in predicting)], name=model.name)
    for ours, theirs in zip(copy.layers, predicting):
        ours.set_weights(theirs.get_weights())
    return copy


@functools.cache
def teach_tf2onnx_erfc() -> None:
    """tf2onnx 1.17 cannot convert TensorFlow's Erfc, which Keras' gelu activation computes on
    TensorFlow (tf.nn.gelu): register a conversion, erfc(x) = 1 - erf(x), through tf2onnx's own
    handler registry (ONNX has Erf from opset 9). Once per process."""
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            node.type = "Erf"
            one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))))
            complement = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(node.name),
                                                       inputs=[one.output[0], node.output[0]])
            ctx.copy_shape(node.output[0], complement.output[0])


def compute_dtype(model: keras.Model) -> str:
    return "bfloat16 compute" if any(layer.dtype_policy.compute_dtype == "bfloat16" for layer in model.layers) else "float32"


def check_io(model: keras.Model) -> None:
    """ExportError unless the model takes one batch of the dataset's images and gives one probability per class."""
    try:
        inputs, outputs = [tuple(t.shape[1:]) for t in model.inputs], [tuple(t.shape[1:]) for t in model.outputs]
    except (AttributeError, ValueError) as e:
        raise ExportError(f"the model has no fixed input and output to export ({e}).") from e
    if inputs != [FASHION_MNIST.input_shape] or outputs != [(FASHION_MNIST.num_classes,)]:
        raise ExportError(f"the model maps {inputs} to {outputs}; an export here is of a model from one {FASHION_MNIST.size_text}×1 image to "
                          f"{FASHION_MNIST.num_classes} class probabilities.")


def layers_named_in(text: str, model: keras.Model) -> list[str]:
    """The model's layers that a converter's message names: TensorFlow's op paths hold the layer's
    name, with a number Keras adds when it traces (…/odd_layer_1/erfinv/Erfinv)."""
    return [layer.name for layer in model.layers if re.search(rf"/{re.escape(layer.name)}(_\d+)?/", text)]


def refused(variant: Variant, ops: list[str], text: str, model: keras.Model) -> ExportError:
    layers = layers_named_in(text, model)
    where = f" in layer {', '.join(layers)}" if layers else ""
    return ExportError(f"the {variant.label} converter does not support the op {', '.join(ops)}{where}, so this model cannot be "
                       f"exported to {variant.label}. Nothing was written.")


def conversion_error(variant: Variant, error: Exception, model: keras.Model) -> ExportError:
    text = str(error)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return refused(variant, ops, text, model)
    first = text.strip().splitlines()[0][:300] if text.strip() else ""
    return ExportError(f"the {variant.label} conversion failed ({type(error).__name__}: {first}). Nothing was written.")


def check_onnx_ops(path: Path, variant: Variant, model: keras.Model) -> None:
    """tf2onnx logs a TensorFlow op it cannot convert and writes it into the graph as it is, where no
    ONNX runtime can run it: refuse such a file, naming the op and its layer."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    unknown = [node for node in graph.node if not onnx.defs.has(node.op_type, node.domain)]
    if unknown:
        raise refused(variant, sorted({node.op_type for node in unknown}), "\n".join("/" + node.name for node in unknown), model)


def litert_options(quantize: str | None, calibration: np.ndarray) -> dict:
    """The LiteRT converter's settings (Keras passes them on). LiteRT's built-in ops only: Keras'
    default also allows TensorFlow ops, which phones' LiteRT runs only with the Flex delegate linked
    in; an op outside them is then refused at conversion, by name, instead of failing on the phone."""
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is None:
        return {"target_spec": {"supported_ops": builtins}}
    if quantize == "float16":  # weights stored in float16 (half the size), computed in float32
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": builtins, "supported_types": [tf.float16]}}

    def representative():
        for image in calibration:
            yield [image[np.newaxis]]

    # int8 weights and activations wherever LiteRT has an int8 kernel (float where it has none);
    # the input and output stay float32, so the model is fed and read as the others are.
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, *builtins]}}


@contextlib.contextmanager
def quiet_converters():
    """tf2onnx logs every step at INFO, and Keras' patch of it warns about numpy: say only what fails."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def convert(model: keras.Model, variant: Variant, path: Path, calibration: np.ndarray) -> None:
    """Keras' own model.export to the variant's format at path; ExportError naming the op (and its
    layer) that the converter refuses."""
    options = litert_options(variant.quantize, calibration) if variant.format == "litert" else {}
    if variant.format == "onnx":
        teach_tf2onnx_erfc()
    try:
        with quiet_converters():
            model.export(str(path), format=KERAS_FORMATS[variant.format], verbose=False, input_signature=SIGNATURE, **options)
    except Exception as e:  # each converter raises its own kinds: the message says which op or why
        raise conversion_error(variant, e, model) from e
    if variant.format == "onnx":
        check_onnx_ops(path, variant, model)


# --- each export in its own runtime ---

def one_at_a_time(predict, images: np.ndarray) -> tuple[np.ndarray, float]:
    """predict on each image as a batch of one, as an app classifying one photo does: (probabilities,
    milliseconds per image). The first call, which sets up the runtime, is not timed."""
    predict(images[:1])
    start = time.perf_counter()
    probs = np.concatenate([np.asarray(predict(images[i:i + 1]), np.float32) for i in range(len(images))])
    return probs, 1000 * (time.perf_counter() - start) / len(images)


def run_onnx(path: Path, images: np.ndarray):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    probs, ms = one_at_a_time(lambda x: session.run(None, {name: x})[0], images)
    return probs, ms, {"input": name, "output": session.get_outputs()[0].name}


def run_litert(path: Path, images: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    given, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def predict(x):
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(result["index"])

    probs, ms = one_at_a_time(predict, images)
    return probs, ms, {"input": given["name"], "output": result["name"]}


def run_saved_model(path: Path, images: np.ndarray):
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    name, output = next(iter(serve.structured_input_signature[1])), next(iter(serve.structured_outputs))
    probs, ms = one_at_a_time(lambda x: serve(**{name: tf.constant(x)})[output].numpy(), images)
    return probs, ms, {"input": f"{name} (signature serving_default)", "output": output}


RUNTIMES = {"onnx": run_onnx, "litert": run_litert, "saved_model": run_saved_model}


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


class Exporter:
    """One run's model, ready to export in any format: loaded (ModelFileError if it cannot be), in
    float32, with the check images and the Keras model's own answers and time on them computed once."""

    def __init__(self, store: RunStore, run_id: int, dataset: Dataset):
        if keras.backend.backend() != "tensorflow":
            raise ExportError(f"Keras runs on {keras.backend.backend()} in this process; exports are made on TensorFlow "
                              "(`python -m fmnist export` starts it so).")
        self.store, self.run_id, self.run = store, run_id, store.get(run_id)
        self.model = load_model(store, run_id)
        check_io(self.model)
        self.version = model_version(store, run_id)
        self.images, self.labels = to_model_input(dataset.x_test[:CHECK_IMAGES]), dataset.y_test[:CHECK_IMAGES]
        self.keras_probs, self.keras_ms = one_at_a_time(self.model.predict_on_batch, self.images)
        self.predicting = inference_copy(self.model)
        picked = np.random.default_rng(0).choice(len(dataset.x_train), CALIBRATION_IMAGES, replace=False)
        self.calibration = to_model_input(dataset.x_train[np.sort(picked)])

    def check(self, variant: Variant, path: Path) -> tuple[dict, dict]:
        """(the check's fields, the export's input and output names), from the export run in its runtime."""
        try:
            probs, ms, io = RUNTIMES[variant.format](path, self.images)
        except Exception as e:  # a file its own runtime cannot load or run is no export
            raise ExportError(f"the {variant.label} export does not run in {variant.runtime} ({type(e).__name__}: "
                              f"{str(e).strip()[:300]}). Nothing was kept.") from e
        return {
            **compare(self.labels, self.keras_probs, probs),
            "which": f"the first {len(self.labels):,} test images",
            "runtime": variant.runtime,
            "size_bytes": size_of(path),
            "keras_size_bytes": self.store.model_path(self.run_id).stat().st_size,
            "ms_per_image": ms,
            "keras_ms_per_image": self.keras_ms,
            "keras_compute": compute_dtype(self.model),
        }, io

    def export(self, variant: Variant, out: Path | None = None, report=None) -> dict:
        """Make, check and keep one export (and copy it with its card to `out`); returns its card. report(stage,
        fraction), if given, hears each step begin; whatever it raises (a Stop) ends the export with nothing kept."""
        report = report or (lambda stage, fraction: None)
        folder = exports_dir(self.store, self.run_id)
        try:
            folder.mkdir(exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
        except OSError as e:
            raise ExportError(f"the run's folder cannot hold exports: {folder} ({e.strerror or e}).") from e
        written = []
        try:
            made = work / variant.file_name(self.run_id)
            report(f"converting to {variant.label}", 0.2)
            convert(self.predicting, variant, made, self.calibration)
            report(f"checking it in {variant.runtime} on {len(self.labels):,} test images", 0.6)
            check, io = self.check(variant, made)
            report("keeping it with its model card", 0.95)
            card = build_card(self.run, variant, made.name, check, io, self.version)
            write_card(card, made)
            kept = kept_path(self.store, self.run_id, variant)
            # --out first: a place that cannot be written (a read-only disk that passed the pre-check, as
            # root) fails before the run's exports/ changes, so "Nothing was kept" is true; what was
            # written anywhere before a failure is removed again.
            if out is not None:
                for_out = work / "out"
                for_out.mkdir()
                write_card({**card, "file": out.name}, for_out / out.name)
                for source, destination in zip((made, *card_paths(for_out / out.name)), (out, *card_paths(out))):
                    copy_into_place(source, destination)  # --out may be on another disk: no move across
                    written.append(destination)
            # The card goes last: a card in place means its export is whole and checked.
            for source, destination in zip((made, *card_paths(made)[::-1]), (kept, *card_paths(kept)[::-1])):
                place(source, destination)
                written.append(destination)
            return card
        except OSError as e:
            for path in written:
                remove(path)
            raise ExportError(f"the export could not be written ({e.strerror or e}: {e.filename or ''}). Nothing was kept.") from e
        finally:
            shutil.rmtree(work, ignore_errors=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_card(card: dict, model_path: Path) -> None:
    json_path, markdown_path = card_paths(model_path)
    json_path.write_text(card_json(card))
    markdown_path.write_text(card_markdown(card))

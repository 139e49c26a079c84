"""What an exported model expects and how it did: the model card written beside every export,
with the check of the export against the Keras model it came from.

Pure side (numpy and the standard library): the Keras side (fmnist.export) measures, this module
turns the measurements into the card's fields and its Markdown, and the Leaderboard and the
command line read them back without loading anything.
"""

import json
from datetime import UTC, datetime
from importlib import metadata

import numpy as np

from fmnist.dataset import FASHION_MNIST
from fmnist.machine import cpu_name
from fmnist.models import stack_name
from fmnist.runs import Run

CARD_VERSION = 1
# The check: these test images, in this order, one at a time (what an app that classifies one
# photo does), in the export's own runtime and in Keras.
CHECK_IMAGES = 1000
PREPROCESSING = (
    "A 28×28 grayscale image of one clothing item, light on a black background (invert a dark item "
    "photographed on a light background), cropped to the item and centred with its long side filling "
    "the frame, the pixel values divided by 255 (0 = black, 1 = white), float32. This is how "
    "Fashion-MNIST's images were made; the app's own preparation of any photo is "
    "fmnist/imaging.py's prepare() (Classify, and `python -m fmnist predict`)."
)


QUANTIZATION = {
    "float16": ", its weights quantised to float16 (it computes in float32)",
    "int8": ", quantised to int8 (weights and activations, calibrated on training images; its input and output stay float32)",
}


def compare(labels: np.ndarray, keras_probs: np.ndarray, probs: np.ndarray) -> dict:
    """How an export's probabilities for the check images agree with the Keras model's and score."""
    probs, keras_probs = np.asarray(probs, np.float64), np.asarray(keras_probs, np.float64)
    accuracy = float((probs.argmax(1) == labels).mean())
    keras_accuracy = float((keras_probs.argmax(1) == labels).mean())
    return {
        "images": len(labels),
        "accuracy": accuracy,
        "keras_accuracy": keras_accuracy,
        "accuracy_drop": keras_accuracy - accuracy,
        "argmax_agreement": float((probs.argmax(1) == keras_probs.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(probs - keras_probs).max()),
    }


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def build_card(run: Run, variant, file_name: str, check: dict, io: dict, model_version: int) -> dict:
    """The card of one export. variant: a fmnist.export_formats.Variant; io: the exported model's
    input and output names; check: compare()'s fields and the sizes and times measured."""
    return {
        "card_version": CARD_VERSION,
        "file": file_name,
        "format": variant.key,
        "format_label": variant.label,
        "quantization": variant.quantize,
        "runtime": variant.runtime,
        "input": {
            "name": io.get("input"), "shape": [None, *FASHION_MNIST.input_shape], "dtype": "float32",
            "layout": "batch, height, width, channel (NHWC); any batch size" if variant.format != "litert"
            else "batch, height, width, channel (NHWC); batch 1 as exported (resize the input tensor for more)",
        },
        "output": {
            "name": io.get("output"), "shape": [None, FASHION_MNIST.num_classes], "dtype": "float32",
            "meaning": "the probability of each class, in the order of `classes` (softmax applied: they add up to 1)",
        },
        "preprocessing": PREPROCESSING,
        "classes": list(FASHION_MNIST.class_names),
        "run": {
            "id": run.id, "name": run.name, "stack": stack_name(run.spec), "params": run.params, "spec": run.spec.to_dict(),
            "trained_on": f"the first {run.train_limit:,} training images" if run.train_limit
            else f"all {FASHION_MNIST.train_size:,} training images",
            "backend": run.backend, "test_accuracy": run.test_acc, "test_loss": run.test_loss,
            "test_images": FASHION_MNIST.test_size,
        },
        "check": {**check, "cpu": cpu_name()},
        "model_version": model_version,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "made_with": {name: package_version(name) for name in ("keras", "tensorflow-cpu", *variant.packages)},
    }


def card_json(card: dict) -> str:
    return json.dumps(card, indent=2, ensure_ascii=False) + "\n"


def check_line(check: dict) -> str:
    """The check in one sentence, as the CLI prints it and the page shows it."""
    drop = check["accuracy_drop"]
    change = "the same" if drop == 0 else f"{100 * abs(drop):.2f} points {'lower' if drop > 0 else 'higher'}"
    return (f"{check['images']:,} test images: accuracy {check['accuracy']:.4f} (Keras {check['keras_accuracy']:.4f}: {change}), "
            f"the same class as Keras for {check['argmax_agreement']:.1%}, "
            f"largest probability difference {check['max_prob_diff']:.2g}, {check['size_bytes']:,} bytes "
            f"(.keras {check['keras_size_bytes']:,}), {check['ms_per_image']:.3f} ms per image "
            f"(Keras {check['keras_ms_per_image']:.3f} ms)")


def card_markdown(card: dict) -> str:
    """The card for people: what the model expects, where it came from, how it did."""
    run, check, inp, out = card["run"], card["check"], card["input"], card["output"]
    quantized = QUANTIZATION.get(card["quantization"], "")
    test = (f"{run['test_accuracy']:.4f} accuracy, {run['test_loss']:.4f} loss on the {run['test_images']:,} test images"
            if run["test_accuracy"] is not None else "not scored on the test set")
    classes = "\n".join(f"{i}. {name}" for i, name in enumerate(card["classes"]))
    spec = run["spec"]
    conv = ", ".join(str(block["filters"]) for block in spec["conv"]) or "none"
    dense = ", ".join(str(layer["units"]) for layer in spec["layers"]) or "none"
    return f"""# Model card: {card['file']}

A Fashion-MNIST classifier from Fashion-MNIST Studio: run #{run['id']} "{run['name']}" ({run['stack']},
{run['params']:,} parameters), exported as {card['format_label'].split()[0]}{quantized}, for {card['runtime']}.

## Input

- name: `{inp['name']}`
- shape: {shape_text(inp['shape'])}, {inp['layout']}
- dtype: {inp['dtype']}
- preprocessing: {card['preprocessing']}

## Output

- name: `{out['name']}`
- shape: {shape_text(out['shape'])}, dtype {out['dtype']}
- {out['meaning']}

## Classes, in order

{classes}

## The model

- conv blocks' filters: {conv}; dense layers' units: {dense} (the full settings: `run.spec` in the card's JSON)
- trained on {run['trained_on']}: {spec['epochs']} epochs, batch {spec['batch_size']}, Adam {spec['learning_rate']:g}
  ({spec['lr_schedule']}), {check['keras_compute']}, by Keras on {run['backend'] or 'an unrecorded backend'}
- test scores of the Keras model: {test}

## Checked when exported

Loaded in {check['runtime']} and run on {check['which']}, one image at a time, beside the Keras model
({check['keras_compute']}), on {check['cpu']}:

| | this export | the Keras model |
| --- | ---: | ---: |
| accuracy | {check['accuracy']:.4f} | {check['keras_accuracy']:.4f} |
| same class as Keras | {check['argmax_agreement']:.2%} | |
| largest probability difference | {check['max_prob_diff']:.2g} | |
| size (bytes) | {check['size_bytes']:,} | {check['keras_size_bytes']:,} (.keras) |
| time per image (ms) | {check['ms_per_image']:.3f} | {check['keras_ms_per_image']:.3f} |

Made {card['made_at']} with {', '.join(f'{name} {version}' for name, version in card['made_with'].items() if version)}.
"""


def shape_text(shape: list) -> str:
    return "(" + ", ".join("batch" if size is None else str(size) for size in shape) + ")"


def read_card(path) -> dict | None:
    """A card written by build_card, or None for a missing, damaged or older one."""
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict) or card.get("card_version") != CARD_VERSION or not isinstance(card.get("check"), dict):
        return None
    return card

"""A link to a stack: Build & Train's settings as the page address's query parameters, and back.

Pure side. `link_params(stack)` writes every setting of the page (the model spec, the training
images, the engine, whether activation, dropout and batch-norm are set per layer) as short query
parameters (`?layers=128,64&act=relu&drop=0.2&epochs=10...`); `read_link(params, base)` applies
the parameters it can read to `base` and names every one it cannot (an unknown name, a value that
is not a number, one outside what the page's controls offer) in its problems. Values are checked
against the controls of Build & Train (`CHOICES` and the ranges below), not only the spec's
validation: a link is what the page can show. With `snap=True` a value outside them is moved to
the nearest the controls offer instead, and the note says so (the coach's *Try it*).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fmnist.backends import PRECISION_LABELS, PRECISION_SETTINGS, SETTINGS
from fmnist.dataset import FASHION_MNIST
from fmnist.models import (
    ACTIVATIONS,
    KERNEL_SIZES,
    LR_SCHEDULES,
    MAX_CONV_BLOCKS,
    MAX_LAYERS,
    WIDTH_RANGE,
    ConvBlock,
    DenseLayer,
    ModelSpec,
)
from fmnist.search_space import FILTER_CHOICES as SEARCH_FILTERS

# What Build & Train's controls offer (pages/train.py draws them from these).
ALL_IMAGES = FASHION_MNIST.train_size
BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [0.0001, 0.0003, 0.001, 0.002, 0.003, 0.01]
TRAIN_SIZES = [1000, 2000, 5000, 10000, 20000, 30000, ALL_IMAGES]
FILTER_CHOICES = list(SEARCH_FILTERS)  # what a search may try, too
EPOCHS_RANGE = (1, 50)
PATIENCE_RANGE = (1, 20)
SEED_RANGE = (0, 2**31 - 1)
DROPOUT_RANGE = (0.0, 0.5)  # in steps of STEP
VAL_SPLIT_RANGE = (0.0, 0.3)  # in steps of STEP
STEP = 0.05


class LinkError(ValueError):
    """A stack the page's controls cannot hold (not a value out of range: a shape they cannot draw)."""


@dataclass(frozen=True)
class Stack:
    """Everything Build & Train's controls hold: the spec, the training images (None: all), the
    engine, and whether activation, dropout and batch-norm are set per layer."""
    spec: ModelSpec
    train_limit: int | None = None
    backend: str = "auto"
    per_layer: bool = False


@dataclass(frozen=True)
class Kind:
    """What one value may be: `choices` (numbers or words) or a range [low, high] (in steps of `step`)."""
    what: str  # says it, for the problem: "one of 16, 32, ..." / "a whole number from 1 to 50"
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None  # None with a range: whole numbers
    words: dict = field(default_factory=dict)  # the link's words for values: {"1": True, ...}


def choices(options, words: Mapping | None = None) -> Kind:
    shown = [next((word for word, value in (words or {}).items() if value == option), option) for option in options]
    return Kind("one of " + ", ".join(f"{option:g}" if isinstance(option, float) else str(option) for option in shown),
                choices=tuple(options), words=dict(words or {}))


def whole(low: int, high: int) -> Kind:
    return Kind(f"a whole number from {low} to {high}", low=low, high=high)


def stepped(low: float, high: float) -> Kind:
    return Kind(f"from {low:g} to {high:g} in steps of {STEP:g}", low=low, high=high, step=STEP)


BOOL = Kind("1 or 0", choices=(True, False), words={"1": True, "0": False, "true": True, "false": False, "on": True, "off": False})
ACTIVATION = choices(ACTIVATIONS)
DROPOUT = stepped(*DROPOUT_RANGE)
WIDTH = whole(*WIDTH_RANGE)
FILTERS = choices(FILTER_CHOICES)
KERNEL = choices(KERNEL_SIZES)
NONE = "none"  # `conv=none`: no conv blocks

# Each query parameter: (what it sets, the kind of each value, whether it holds a list).
PARAMS = {
    "layers": ("hidden layers' widths", WIDTH, True),
    "act": ("activation", ACTIVATION, True),
    "drop": ("dropout", DROPOUT, True),
    "bn": ("batch-norm", BOOL, True),
    "per": ("settings per layer", BOOL, False),
    "conv": ("conv blocks' filters", FILTERS, True),
    "kernel": ("conv kernel sizes", KERNEL, True),
    "pool": ("conv pooling", BOOL, True),
    "cbn": ("conv batch-norm", BOOL, True),
    "cdrop": ("conv dropout", DROPOUT, True),
    "cact": ("conv activation", ACTIVATION, False),
    "epochs": ("epochs", whole(*EPOCHS_RANGE), False),
    "batch": ("batch size", choices(BATCH_SIZES), False),
    "lr": ("learning rate", choices(LEARNING_RATES), False),
    "sched": ("learning-rate schedule", choices(LR_SCHEDULES), False),
    "val": ("validation split", stepped(*VAL_SPLIT_RANGE), False),
    "aug": ("augmentation", BOOL, False),
    "prec": ("precision", choices(PRECISION_SETTINGS, {"auto": "auto", **{label: value for value, label in PRECISION_LABELS.items()}}), False),
    "seed": ("seed", whole(*SEED_RANGE), False),
    "es": ("early stopping", BOOL, False),
    "patience": ("patience", whole(*PATIENCE_RANGE), False),
    "ckpt": ("checkpoint", BOOL, False),
    "images": ("training images", choices(TRAIN_SIZES, {"all": ALL_IMAGES}), False),
    "engine": ("engine", choices(SETTINGS), False),
}
# The training settings that are one spec field each.
SPEC_FIELDS = {"epochs": "epochs", "batch": "batch_size", "lr": "learning_rate", "sched": "lr_schedule", "val": "val_split",
               "aug": "augment", "prec": "mixed_precision", "seed": "seed", "es": "early_stopping", "patience": "patience",
               "ckpt": "checkpoint"}


def word(kind: Kind, value) -> str:
    """A value as the link writes it."""
    for text, meant in kind.words.items():
        if meant == value and type(meant) is type(value):
            return text
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_value(kind: Kind, text: str):
    """The value the text means; ValueError saying why not ("not a number", or what the kind allows)."""
    text = text.strip().lower()
    if text in kind.words:
        return kind.words[text]
    words = [option for option in kind.choices if isinstance(option, str)]
    if words or kind is BOOL:
        if text in words:
            return text
        raise ValueError(kind.what)
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a number")
    floats = kind.step is not None or any(isinstance(option, float) for option in kind.choices)
    if floats:
        return number
    if number != int(number):
        raise ValueError(kind.what)
    return int(number)


def fits(kind: Kind, value) -> bool:
    if kind.choices:
        return any(value == option and type(value) is type(option) or close(value, option) for option in kind.choices)
    if not kind.low <= value <= kind.high:
        return False
    return kind.step is None or close(value / kind.step, round(value / kind.step))


def close(a, b) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def nearest(kind: Kind, value):
    """The value the control offers nearest to this one (numbers only)."""
    if kind.choices:
        numbers = [option for option in kind.choices if isinstance(option, (int, float)) and not isinstance(option, bool)]
        return min(numbers, key=lambda option: abs(math.log(option) - math.log(value)) if value > 0 else option)
    value = min(max(value, kind.low), kind.high)
    return round(round(value / kind.step) * kind.step, 2) if kind.step else int(round(value))


def tidy(kind: Kind, value):
    """The control's own value for one that fits it: 0.30000000000000004 → 0.3, 0.0003 as listed."""
    if kind.choices:
        return next((option for option in kind.choices if close(value, option)), value)
    return round(value, 2) if kind.step else value


def link_params(stack: Stack) -> dict[str, str]:
    """Every setting of the stack as query parameters (all of them: whoever opens the link gets exactly this)."""
    spec = stack.spec
    conv_activations = {block.activation for block in spec.conv}
    if len(conv_activations) > 1:
        raise LinkError("Build & Train gives every conv block the same activation; this stack's differ: "
                        + ", ".join(block.activation for block in spec.conv))
    layers = spec.layers
    shared = {(layer.activation, layer.dropout, layer.batch_norm) for layer in layers}
    dense_activation = layers[0].activation if layers else None
    per_layer = stack.per_layer or len(shared) > 1 or (conv_activations and conv_activations != {dense_activation})

    def each(values, kind) -> str:
        values = list(values)
        return ",".join(word(kind, value) for value in (values if per_layer else values[:1])) or NONE

    params = {
        "layers": ",".join(str(layer.units) for layer in layers) or NONE,
        "act": each((layer.activation for layer in layers), ACTIVATION),
        "drop": each((layer.dropout for layer in layers), DROPOUT),
        "bn": each((layer.batch_norm for layer in layers), BOOL),
        "per": word(BOOL, bool(per_layer)),
        "conv": ",".join(str(block.filters) for block in spec.conv) or NONE,
    }
    if spec.conv:
        params |= {
            "kernel": ",".join(str(block.kernel_size) for block in spec.conv),
            "pool": ",".join(word(BOOL, block.pool) for block in spec.conv),
            "cbn": ",".join(word(BOOL, block.batch_norm) for block in spec.conv),
            "cdrop": ",".join(word(DROPOUT, block.dropout) for block in spec.conv),
            "cact": spec.conv[0].activation,
        }
    for name, spec_field in SPEC_FIELDS.items():
        params[name] = word(PARAMS[name][1], getattr(spec, spec_field))
    params["images"] = word(PARAMS["images"][1], stack.train_limit or ALL_IMAGES)
    params["engine"] = stack.backend
    return params


def read_values(name: str, text: str, snap: bool, notes: list[str]) -> list | None:
    """One parameter's values (a list), or None with its problem in `notes` (or, snapped, a note of the move)."""
    what, kind, is_list = PARAMS[name]
    texts = [part for part in str(text).split(",")] if is_list else [str(text)]
    if is_list and [part.strip().lower() for part in texts] == [NONE]:
        return []
    values = []
    for part in texts:
        try:
            value = parse_value(kind, part)
        except ValueError as e:
            notes.append(f"{name}={text} ({what}): {e}")
            return None
        if not fits(kind, value):
            if not snap or not isinstance(value, (int, float)) or isinstance(value, bool):
                notes.append(f"{name}={text} ({what}): {kind.what}")
                return None
            moved = nearest(kind, value)
            notes.append(f"{what}: {word(kind, value)} → {word(kind, moved)}, the nearest the page offers")
            value = moved
        values.append(tidy(kind, value))
    return values


def per_item(name: str, values: list | None, count: int, fallback: list, problems: list[str]) -> list:
    """A list parameter's values for `count` items: one value for all, one per item, or (absent) the fallback."""
    if values is None:
        return fallback
    if len(values) == 1:
        return values * count
    if len(values) != count:
        problems.append(f"{name}: one value, or one for each of the {count}, got {len(values)}")
        return fallback
    return values


def read_link(params: Mapping[str, str], base: Stack, snap: bool = False) -> tuple[Stack, list[str]]:
    """`base` with every parameter it can read applied, and a problem for each it cannot: an unknown
    name, a value that is not a number, one outside the page's controls, a list of the wrong length.
    With snap, a number outside the controls is moved to the nearest they offer (a note, not a problem)."""
    problems = [f"{name} (not a setting this version knows)" for name in params if name not in PARAMS]
    parsed = {name: read_values(name, text, snap, problems) for name, text in params.items() if name in PARAMS}
    spec = base.spec

    widths = parsed.get("layers")
    if widths is not None and not 1 <= len(widths) <= MAX_LAYERS:
        problems.append(f"layers={params['layers']} (hidden layers' widths): from 1 to {MAX_LAYERS} layers")
        widths = None
    if widths is None:
        widths = [layer.units for layer in spec.layers] or [64]
    count = len(widths)

    def old(i: int) -> DenseLayer:
        return spec.layers[i] if i < len(spec.layers) else (spec.layers[0] if spec.layers else DenseLayer(64))

    activations = per_item("act", parsed.get("act"), count, [old(i).activation for i in range(count)], problems)
    dropouts = per_item("drop", parsed.get("drop"), count, [old(i).dropout for i in range(count)], problems)
    norms = per_item("bn", parsed.get("bn"), count, [old(i).batch_norm for i in range(count)], problems)
    layers = tuple(DenseLayer(int(w), a, float(d), bool(b)) for w, a, d, b in zip(widths, activations, dropouts, norms))

    filters = parsed.get("conv")
    if filters is not None and len(filters) > MAX_CONV_BLOCKS:
        problems.append(f"conv={params['conv']} (conv blocks' filters): at most {MAX_CONV_BLOCKS} blocks")
        filters = None
    if filters is None:
        filters = [block.filters for block in spec.conv]
    blocks = len(filters)

    def old_block(i: int) -> ConvBlock:
        return spec.conv[i] if i < len(spec.conv) else ConvBlock(32)

    kernels = per_item("kernel", parsed.get("kernel"), blocks, [old_block(i).kernel_size for i in range(blocks)], problems)
    pools = per_item("pool", parsed.get("pool"), blocks, [old_block(i).pool for i in range(blocks)], problems)
    conv_norms = per_item("cbn", parsed.get("cbn"), blocks, [old_block(i).batch_norm for i in range(blocks)], problems)
    conv_dropouts = per_item("cdrop", parsed.get("cdrop"), blocks, [old_block(i).dropout for i in range(blocks)], problems)
    per_layer = (parsed.get("per") or [base.per_layer])[0]
    conv_activation = (parsed.get("cact") or [None])[0]
    if conv_activation is None:  # without per-layer settings the conv blocks share the dense layers' activation
        conv_activation = (spec.conv[0].activation if spec.conv else None) if per_layer else activations[0]
    conv = tuple(ConvBlock(int(f), int(k), conv_activation or "relu", bool(p), float(d), bool(b))
                 for f, k, p, d, b in zip(filters, kernels, pools, conv_dropouts, conv_norms))

    training = {spec_field: parsed[name][0] for name, spec_field in SPEC_FIELDS.items() if parsed.get(name)}
    spec = replace(spec, layers=layers, conv=conv, **training)
    images = parsed.get("images")
    limit = base.train_limit if not images else (None if images[0] == ALL_IMAGES else images[0])
    backend = (parsed.get("engine") or [base.backend])[0]
    uniform = len({(layer.activation, layer.dropout, layer.batch_norm) for layer in layers}) <= 1
    per_layer = bool(per_layer or not uniform or (conv and conv_activation != layers[0].activation))
    return Stack(spec, limit, backend, per_layer), problems


def problems_message(problems: list[str]) -> str:
    """Every problem of a link in one message."""
    return ("This link has settings the page could not apply, so they were left as they were: "
            + "; ".join(problems) + ". The rest of the link is applied.")

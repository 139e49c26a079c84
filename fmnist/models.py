"""Model specs: a small JSON description of a network, its exact size, and the Keras model.

Pure Python: the layer plan gives the summary and the exact parameter count
without TensorFlow, so the UI can show them as sliders move; fmnist.network
builds the Keras model from the same plan.
"""

import functools
from dataclasses import asdict, dataclass, fields, replace

from fmnist.dataset import FASHION_MNIST, DatasetInfo
from fmnist.machine import cpu_flags

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "tanh", "sigmoid", "swish")
MAX_LAYERS = 6
WIDTH_RANGE = (8, 1024)
MAX_CONV_BLOCKS = 3  # three 2×2 poolings take 28×28 down to 3×3
FILTERS_RANGE = (4, 256)
KERNEL_SIZES = (3, 5)
# constant; cosine decay to zero over the run; halve when validation loss stalls for 2 epochs.
LR_SCHEDULES = ("constant", "cosine", "plateau")


class SpecError(ValueError):
    """A spec field is out of range; the message names the field."""


@dataclass(frozen=True)
class DenseLayer:
    units: int
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False


@dataclass(frozen=True)
class ConvBlock:
    """Conv2D ('same' padding) -> [batch-norm] -> activation -> [2×2 max-pooling] -> [dropout]."""
    filters: int
    kernel_size: int = 3
    activation: str = "relu"
    pool: bool = True
    dropout: float = 0.0
    batch_norm: bool = False


@dataclass(frozen=True)
class ModelSpec:
    layers: tuple[DenseLayer, ...]
    conv: tuple[ConvBlock, ...] = ()  # before the dense stack; specs saved before conv support have none
    augment: bool = False  # random shifts and left-right flips while training
    lr_schedule: str = "constant"
    # Compute in bfloat16, keep the weights in float32: about twice as fast for convolutions on a CPU
    # with bfloat16 instructions (AVX512-BF16, AMX), much slower on one without. "auto" (the default)
    # leaves the choice to the machine that trains the run (fmnist.backends.mixed_precision_for);
    # True or False (what specs stored before "auto" hold) is a person's own choice, honoured anywhere.
    mixed_precision: bool | str = "auto"
    learning_rate: float = 0.001
    epochs: int = 10
    batch_size: int = 32
    val_split: float = 0.1
    seed: int = 0
    early_stopping: bool = False
    patience: int = 3
    checkpoint: bool = False
    optimizer: str = "adam"
    loss: str = "sparse_categorical_crossentropy"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        reject_unknown_fields(cls, data, "spec")
        layers = parse_list(data.get("layers"), DenseLayer, "layers", "units")
        conv = parse_list(data.get("conv", []), ConvBlock, "conv", "filters")
        return validate(cls(**{**data, "layers": layers, "conv": conv}))


def reject_unknown_fields(cls, data: dict, what: str) -> None:
    """A saved spec or search space with a field this version does not know is an error, not silently dropped."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise SpecError(f"unknown {what} fields: {', '.join(sorted(unknown))}")


def parse_list(items, kind, field_name: str, short_field: str) -> tuple:
    """Layers as dicts, or as plain numbers for their size."""
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"{field_name}: a list is required, got {items!r}")
    parsed = []
    for i, item in enumerate(items):
        try:
            parsed.append(kind(**item) if isinstance(item, dict) else kind(**{short_field: item}))
        except TypeError as e:
            raise SpecError(f"{field_name}[{i}]: {e}") from e
    return tuple(parsed)


def dense_spec(widths, activation="relu", dropout=0.0, batch_norm=False, **training) -> ModelSpec:
    """A spec whose hidden layers share activation, dropout and batch-norm."""
    layers = tuple(DenseLayer(int(w), activation, float(dropout), bool(batch_norm)) for w in widths)
    return validate(ModelSpec(layers=layers, **training))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(spec: ModelSpec) -> ModelSpec:
    fewest = 0 if spec.conv else 1
    _check(fewest <= len(spec.layers) <= MAX_LAYERS, f"layers: between {fewest} and {MAX_LAYERS} hidden layers, got {len(spec.layers)}")
    _check(len(spec.conv) <= MAX_CONV_BLOCKS, f"conv: at most {MAX_CONV_BLOCKS} blocks, got {len(spec.conv)}")
    for i, block in enumerate(spec.conv):
        low, high = FILTERS_RANGE
        _check(_is_int(block.filters) and low <= block.filters <= high,
               f"conv[{i}].filters: a whole number from {low} to {high}, got {block.filters!r}")
        _check(block.kernel_size in KERNEL_SIZES, f"conv[{i}].kernel_size: one of {', '.join(map(str, KERNEL_SIZES))}, got {block.kernel_size!r}")
        _check(block.activation in ACTIVATIONS, f"conv[{i}].activation: one of {', '.join(ACTIVATIONS)}, got {block.activation!r}")
        _check(isinstance(block.pool, bool), f"conv[{i}].pool: true or false, got {block.pool!r}")
        _check(isinstance(block.dropout, (int, float)) and 0 <= block.dropout < 1, f"conv[{i}].dropout: from 0 to below 1, got {block.dropout!r}")
        _check(isinstance(block.batch_norm, bool), f"conv[{i}].batch_norm: true or false, got {block.batch_norm!r}")
    _check(isinstance(spec.augment, bool), f"augment: true or false, got {spec.augment!r}")
    _check(spec.mixed_precision == "auto" or isinstance(spec.mixed_precision, bool),
           f"mixed_precision: auto, true or false, got {spec.mixed_precision!r}")
    _check(spec.lr_schedule in LR_SCHEDULES, f"lr_schedule: one of {', '.join(LR_SCHEDULES)}, got {spec.lr_schedule!r}")
    _check(spec.lr_schedule != "plateau" or spec.val_split > 0, "lr_schedule plateau watches validation loss: set val_split above 0")
    low, high = WIDTH_RANGE
    for i, layer in enumerate(spec.layers):
        _check(_is_int(layer.units) and low <= layer.units <= high, f"layers[{i}].units: a whole number from {low} to {high}, got {layer.units!r}")
        _check(layer.activation in ACTIVATIONS, f"layers[{i}].activation: one of {', '.join(ACTIVATIONS)}, got {layer.activation!r}")
        _check(isinstance(layer.dropout, (int, float)) and 0 <= layer.dropout < 1, f"layers[{i}].dropout: from 0 to below 1, got {layer.dropout!r}")
        _check(isinstance(layer.batch_norm, bool), f"layers[{i}].batch_norm: true or false, got {layer.batch_norm!r}")
    _check(isinstance(spec.learning_rate, (int, float)) and 0 < spec.learning_rate <= 1,
           f"learning_rate: above 0 and at most 1, got {spec.learning_rate!r}")
    _check(_is_int(spec.epochs) and 1 <= spec.epochs <= 500, f"epochs: a whole number from 1 to 500, got {spec.epochs!r}")
    _check(_is_int(spec.batch_size) and 1 <= spec.batch_size <= 8192, f"batch_size: a whole number from 1 to 8192, got {spec.batch_size!r}")
    _check(isinstance(spec.val_split, (int, float)) and 0 <= spec.val_split < 1, f"val_split: from 0 to below 1, got {spec.val_split!r}")
    _check(_is_int(spec.seed) and spec.seed >= 0, f"seed: a whole number from 0, got {spec.seed!r}")
    _check(_is_int(spec.patience) and spec.patience >= 1, f"patience: a whole number from 1, got {spec.patience!r}")
    _check(not spec.early_stopping or spec.val_split > 0, "early_stopping watches validation loss: set val_split above 0")
    _check(not spec.checkpoint or spec.val_split > 0, "checkpoint keeps the best validation loss: set val_split above 0")
    _check(spec.optimizer == "adam", f"optimizer: only adam is supported, got {spec.optimizer!r}")
    _check(spec.loss == "sparse_categorical_crossentropy", f"loss: only sparse_categorical_crossentropy is supported, got {spec.loss!r}")
    return spec


@functools.cache  # the Train page asks on every rerun
def cpu_has_bfloat16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (Linux tells; elsewhere None: unknown)."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def stack_name(spec: ModelSpec) -> str:
    """The stack as people write it, e.g. '128-64', or 'c32-c64-128' with conv blocks."""
    return "-".join([f"c{block.filters}" for block in spec.conv] + [str(layer.units) for layer in spec.layers])


@dataclass(frozen=True)
class PlannedLayer:
    """One Keras layer of a spec: its class and arguments, and what it outputs and weighs.

    The summary, the parameter count and the Keras model (fmnist.network) all come from
    the same plan, so the count the UI shows without TensorFlow is exact by construction.
    """
    name: str
    type: str  # the keras.layers class
    args: tuple[tuple[str, object], ...]  # its constructor's arguments, beyond name and dtype
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    # Layers of a mixed-precision spec compute in bfloat16; the augmentation layers and
    # the softmax output stay in float32, where the probabilities and the loss are accurate.
    # A spec on "auto" plans float32: the training process resolves it first (fmnist.training.fit).
    mixed_precision: bool = False


def layer_plan(spec: ModelSpec, info: DatasetInfo = FASHION_MNIST) -> list[PlannedLayer]:
    """Input(height, width, 1) -> [augmentation] -> [conv blocks] -> Flatten -> Dense... -> Dense(classes, softmax),
    for the images and classes of the dataset info describes."""
    (rows, cols), channels = info.image_shape, 1
    mixed = spec.mixed_precision is True
    plan = []

    def add(name, kind, shape, params=0, **args):
        plan.append(PlannedLayer(name, kind, tuple(args.items()), tuple(shape), params, mixed))

    if spec.augment:
        # Clothing is left-right symmetric and sits roughly centred: small shifts and mirror images
        # are still the same class. Both layers are inactive outside training.
        image = (rows, cols, channels)
        plan.append(PlannedLayer("augment_shift", "RandomTranslation",
                                 (("height_factor", 0.1), ("width_factor", 0.1), ("fill_mode", "constant"), ("seed", spec.seed)), image, 0))
        plan.append(PlannedLayer("augment_flip", "RandomFlip", (("mode", "horizontal"), ("seed", spec.seed)), image, 0))
    for i, block in enumerate(spec.conv, start=1):
        shape = (rows, cols, block.filters)
        weights = block.kernel_size * block.kernel_size * channels * block.filters
        add(f"conv_{i}", "Conv2D", shape, weights + block.filters, filters=block.filters, kernel_size=block.kernel_size,
            padding="same", activation=None if block.batch_norm else block.activation)
        if block.batch_norm:  # the activation comes after the normalisation, as a layer of its own
            add(f"conv_batch_norm_{i}", "BatchNormalization", shape, 4 * block.filters)
            add(f"conv_activation_{i}", "Activation", shape, activation=block.activation)
        if block.pool:
            rows, cols = rows // 2, cols // 2
            shape = (rows, cols, block.filters)
            add(f"pool_{i}", "MaxPooling2D", shape, pool_size=2)
        if block.dropout > 0:
            add(f"conv_dropout_{i}", "Dropout", shape, rate=block.dropout)
        channels = block.filters
    width = rows * cols * channels
    add("flatten", "Flatten", (width,))
    for i, layer in enumerate(spec.layers, start=1):
        shape = (layer.units,)
        add(f"dense_{i}", "Dense", shape, width * layer.units + layer.units, units=layer.units,
            activation=None if layer.batch_norm else layer.activation)
        if layer.batch_norm:
            add(f"batch_norm_{i}", "BatchNormalization", shape, 4 * layer.units)
            add(f"activation_{i}", "Activation", shape, activation=layer.activation)
        if layer.dropout > 0:
            add(f"dropout_{i}", "Dropout", shape, rate=layer.dropout)
        width = layer.units
    classes = info.num_classes
    plan.append(PlannedLayer("output", "Dense", (("units", classes), ("activation", "softmax")), (classes,), width * classes + classes))
    return plan


def summary_rows(spec: ModelSpec) -> list[dict]:
    """Keras-style summary (layer, type, output shape, params) computed without Keras."""
    return [
        {"layer": layer.name, "type": layer.type, "output_shape": str((None, *layer.output_shape)), "params": layer.params}
        for layer in layer_plan(spec)
    ]


def count_params(spec: ModelSpec) -> int:
    """Exactly what Keras' count_params() reports for fmnist.network.build_model(spec)."""
    return sum(layer.params for layer in layer_plan(spec))


def training_flops_per_sample(spec: ModelSpec) -> int:
    """Multiply-adds of one training step per image, counted as 2 FLOPs each: for every Dense and
    Conv2D layer its forward pass, the gradient of its weights, and (except the first layer, whose
    input is the image) the gradient of its input: three times the forward pass. Activations,
    pooling, the loss and Adam's update are left out (a few percent for these models)."""
    total, first = 0, True
    channels = 1
    for layer in layer_plan(spec):
        args = dict(layer.args)
        if layer.type == "Dense":
            macs = (layer.params - args["units"])  # weights: inputs × units
        elif layer.type == "Conv2D":
            side = layer.output_shape[0]
            macs = side * side * args["kernel_size"] ** 2 * channels * args["filters"]
            channels = args["filters"]
        else:
            continue
        total += macs * (2 if first else 3)
        first = False
    return 2 * total


SEED_STACKS = {
    "Seed A: 64-128-64-32": (64, 128, 64, 32),
    "Seed B: 64-128-32": (64, 128, 32),
    "Seed C: 64-32": (64, 32),
    "Seed D: 128-64": (128, 64),
}
# The seed notebook's test accuracy for each stack, for side-by-side tables.
SEED_TEST_ACCURACY = {
    (64, 128, 64, 32): 0.8874,
    (64, 128, 32): 0.8854,
    (64, 32): 0.8819,
    (128, 64): 0.8861,
}
SEED_TEST_LOSS = {
    (64, 128, 64, 32): 0.4220,
    (64, 128, 32): 0.3832,
    (64, 32): 0.3702,
    (128, 64): 0.3546,
}
PRESETS = {
    **{name: dense_spec(widths) for name, widths in SEED_STACKS.items()},
    # Wider, with dropout against overfitting and a cosine-decayed learning rate to settle at the end.
    "Best MLP": dense_spec((512, 256), dropout=0.2, epochs=20, batch_size=64, lr_schedule="cosine"),
    # The same width in fewer, larger steps: batch-norm lets a batch of 256 take a learning rate of
    # 0.003, and the cosine decay settles it (docs/performance.md, "Fast MLP: 0.90 in well under a minute": what each part bought).
    "Fast MLP": dense_spec((512, 256), dropout=0.2, batch_norm=True, epochs=15, batch_size=256, learning_rate=0.003,
                           lr_schedule="cosine"),
    # Two conv blocks, a larger batch with a larger learning rate: chosen among the variants in
    # docs/performance.md, "How the Small CNN got there". Its precision is the machine's (auto): bfloat16
    # where the CPU computes it natively or on a GPU, float32 elsewhere (docs/precision.md).
    "Small CNN": validate(ModelSpec(
        conv=(ConvBlock(32, dropout=0.25), ConvBlock(64, dropout=0.25)),
        layers=(DenseLayer(128, dropout=0.3),),
        epochs=15, batch_size=128, learning_rate=0.002, val_split=0.05, lr_schedule="cosine",
    )),
}


# What each preset reaches on the test set (three seeds: docs/performance.md, "Presets"), as the Train
# page labels them. A recipe's accuracy travels between machines; its time does not: the page adds
# the time this machine measured or estimates (fmnist.estimates).
PRESET_EXPECTED = {
    "Seed A: 64-128-64-32": "seed notebook 0.887",
    "Seed B: 64-128-32": "seed notebook 0.885",
    "Seed C: 64-32": "seed notebook 0.882",
    "Seed D: 128-64": "seed notebook 0.886",
    "Best MLP": "0.899 test accuracy",
    "Fast MLP": "0.902 test accuracy",
    "Small CNN": "0.926 test accuracy",
}


def with_training(spec: ModelSpec, **changes) -> ModelSpec:
    return validate(replace(spec, **changes))

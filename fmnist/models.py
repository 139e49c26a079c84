"""Model specs: a small JSON description of a network, its exact size, and the Keras model.

Counting parameters and drawing the summary need no TensorFlow, so the UI can
show them as sliders move; only `build_model` imports Keras.
"""

from dataclasses import asdict, dataclass, fields, replace

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "tanh", "sigmoid", "swish")
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
MAX_LAYERS = 6
WIDTH_RANGE = (8, 1024)


class SpecError(ValueError):
    """A spec field is out of range; the message names the field."""


@dataclass(frozen=True)
class DenseLayer:
    units: int
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False


@dataclass(frozen=True)
class ModelSpec:
    layers: tuple[DenseLayer, ...]
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
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"unknown spec fields: {', '.join(sorted(unknown))}")
        if not isinstance(data.get("layers"), (list, tuple)):
            raise SpecError("layers: a list of dense layers is required")
        layers = []
        for i, layer in enumerate(data["layers"]):
            try:
                layers.append(DenseLayer(**layer) if isinstance(layer, dict) else DenseLayer(units=layer))
            except TypeError as e:
                raise SpecError(f"layers[{i}]: {e}") from e
        return validate(cls(**{**data, "layers": tuple(layers)}))


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
    _check(1 <= len(spec.layers) <= MAX_LAYERS, f"layers: between 1 and {MAX_LAYERS} hidden layers, got {len(spec.layers)}")
    low, high = WIDTH_RANGE
    for i, layer in enumerate(spec.layers):
        _check(_is_int(layer.units) and low <= layer.units <= high, f"layers[{i}].units: a whole number from {low} to {high}, got {layer.units!r}")
        _check(layer.activation in ACTIVATIONS, f"layers[{i}].activation: one of {', '.join(ACTIVATIONS)}, got {layer.activation!r}")
        _check(isinstance(layer.dropout, (int, float)) and 0 <= layer.dropout < 1, f"layers[{i}].dropout: from 0 to below 1, got {layer.dropout!r}")
        _check(isinstance(layer.batch_norm, bool), f"layers[{i}].batch_norm: true or false, got {layer.batch_norm!r}")
    _check(isinstance(spec.learning_rate, (int, float)) and 0 < spec.learning_rate <= 1, f"learning_rate: above 0 and at most 1, got {spec.learning_rate!r}")
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


def stack_name(spec: ModelSpec) -> str:
    """The stack as people write it, e.g. '128-64'."""
    return "-".join(str(layer.units) for layer in spec.layers)


def summary_rows(spec: ModelSpec) -> list[dict]:
    """Keras-style summary (layer, output shape, params) computed without Keras."""
    flat = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
    rows = [{"layer": "flatten", "type": "Flatten", "output_shape": f"(None, {flat})", "params": 0}]
    width = flat
    for i, layer in enumerate(spec.layers, start=1):
        rows.append({"layer": f"dense_{i}", "type": "Dense", "output_shape": f"(None, {layer.units})", "params": width * layer.units + layer.units})
        if layer.batch_norm:
            rows.append({"layer": f"batch_norm_{i}", "type": "BatchNormalization", "output_shape": f"(None, {layer.units})", "params": 4 * layer.units})
            rows.append({"layer": f"activation_{i}", "type": "Activation", "output_shape": f"(None, {layer.units})", "params": 0})
        if layer.dropout > 0:
            rows.append({"layer": f"dropout_{i}", "type": "Dropout", "output_shape": f"(None, {layer.units})", "params": 0})
        width = layer.units
    rows.append({"layer": "output", "type": "Dense", "output_shape": f"(None, {NUM_CLASSES})", "params": width * NUM_CLASSES + NUM_CLASSES})
    return rows


def count_params(spec: ModelSpec) -> int:
    """Exactly what Keras' count_params() reports for build_model(spec)."""
    return sum(row["params"] for row in summary_rows(spec))


def build_model(spec: ModelSpec):
    """Input(28,28,1) -> Flatten -> Dense... -> Dense(10, softmax), with the layer names of summary_rows."""
    import keras
    from keras import layers

    model_layers = [keras.Input(shape=INPUT_SHAPE), layers.Flatten(name="flatten")]
    for i, layer in enumerate(spec.layers, start=1):
        if layer.batch_norm:
            model_layers += [
                layers.Dense(layer.units, name=f"dense_{i}"),
                layers.BatchNormalization(name=f"batch_norm_{i}"),
                layers.Activation(layer.activation, name=f"activation_{i}"),
            ]
        else:
            model_layers.append(layers.Dense(layer.units, activation=layer.activation, name=f"dense_{i}"))
        if layer.dropout > 0:
            model_layers.append(layers.Dropout(layer.dropout, name=f"dropout_{i}"))
    model_layers.append(layers.Dense(NUM_CLASSES, activation="softmax", name="output"))
    return keras.Sequential(model_layers, name=stack_name(spec).replace("-", "_"))


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
PRESETS = {name: dense_spec(widths) for name, widths in SEED_STACKS.items()}


def with_training(spec: ModelSpec, **changes) -> ModelSpec:
    return validate(replace(spec, **changes))

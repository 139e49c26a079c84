"""What a search may try: the ranges of a stack's settings, what each trial trains on, and the budget.

Pure Python. `suggest` asks an Optuna trial (any object with its suggest_* methods) for one
configuration and returns it as an ordinary ModelSpec, so a trial trains like any run.
"""

import math
from dataclasses import asdict, dataclass

from fmnist.dataset import FASHION_MNIST
from fmnist.models import (
    ACTIVATIONS,
    FILTERS_RANGE,
    MAX_CONV_BLOCKS,
    MAX_LAYERS,
    WIDTH_RANGE,
    ConvBlock,
    DenseLayer,
    ModelSpec,
    SpecError,
    count_params,
    reject_unknown_fields,
    validate,
)

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
FILTER_CHOICES = (8, 16, 32, 64, 128)
DROPOUT_STEP = 0.05
MAX_TRIALS = 1000
MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class SearchSpace:
    """Ranges are (low, high), both included; choices are tuples. Defaults: an MLP search that
    ends in about ten minutes on two CPU cores (docs/performance.md, "The search")."""
    layers: tuple[int, int] = (1, 4)
    width: tuple[int, int] = (32, 1024)  # every layer's own width, log scale
    activations: tuple[str, ...] = ("relu", "gelu", "tanh")  # one for the whole stack
    dropout: tuple[float, float] = (0.0, 0.4)  # one for the whole stack, in steps of 0.05
    batch_norm: tuple[bool, ...] = (False, True)
    learning_rate: tuple[float, float] = (3e-4, 3e-3)  # log scale
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    # Cosine decay settles every run at its end, a trial's short one and the best's long retraining alike.
    lr_schedules: tuple[str, ...] = ("cosine",)
    conv_blocks: tuple[int, int] = (0, 0)
    filters: tuple[int, ...] = (16, 32, 64)
    # What each trial trains on: the first `images` training images, `epochs` epochs, the last
    # val_split of them held out for validation (trials never see the test set).
    images: int = 20000
    epochs: int = 6
    val_split: float = 0.1
    seed: int = 0
    # The budget: stop after this many trials or minutes, whichever comes first (None: no limit).
    trials: int | None = 40
    minutes: float | None = 10.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        reject_unknown_fields(cls, data, "search")
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return validate_space(cls(**{**data, **tuples}))


def _range(name: str, value, low, high, kind=int) -> None:
    ok = isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    if not ok:
        raise SpecError(f"{name}: a range (low, high), got {value!r}")
    if not low <= value[0] <= value[1] <= high:
        raise SpecError(f"{name}: from {low} to {high} with low ≤ high, got {value[0]}–{value[1]}")


def _choices(name: str, value, allowed) -> None:
    if not isinstance(value, tuple) or not value:
        raise SpecError(f"{name}: choose at least one")
    wrong = [v for v in value if v not in allowed]
    if wrong:
        raise SpecError(f"{name}: {', '.join(map(str, wrong))} not among {', '.join(map(str, allowed))}")


def validate_space(space: SearchSpace) -> SearchSpace:
    """A space that can be searched, or SpecError naming the field that cannot."""
    _range("layers", space.layers, 1 if space.conv_blocks[1] == 0 else 0, MAX_LAYERS)
    _range("width", space.width, *WIDTH_RANGE)
    _choices("activations", space.activations, ACTIVATIONS)
    _range("dropout", space.dropout, 0.0, 0.9, kind=(int, float))
    _choices("batch_norm", space.batch_norm, (False, True))
    _range("learning_rate", space.learning_rate, 1e-5, 1.0, kind=(int, float))
    _choices("batch_sizes", space.batch_sizes, BATCH_SIZES)
    _choices("lr_schedules", space.lr_schedules, ("constant", "cosine"))
    _range("conv_blocks", space.conv_blocks, 0, MAX_CONV_BLOCKS)
    _choices("filters", space.filters, tuple(f for f in FILTER_CHOICES if FILTERS_RANGE[0] <= f <= FILTERS_RANGE[1]))
    if not (isinstance(space.images, int) and 100 <= space.images <= FASHION_MNIST.train_size):
        raise SpecError(f"images: a whole number from 100 to {FASHION_MNIST.train_size}, got {space.images!r}")
    if not (isinstance(space.epochs, int) and 1 <= space.epochs <= 100):
        raise SpecError(f"epochs: a whole number from 1 to 100, got {space.epochs!r}")
    if not (isinstance(space.val_split, (int, float)) and 0.05 <= space.val_split <= 0.5):
        raise SpecError(f"val_split: from 0.05 to 0.5 (trials are compared on validation accuracy), got {space.val_split!r}")
    if space.trials is None and space.minutes is None:
        raise SpecError("budget: give a number of trials, minutes, or both")
    if space.trials is not None and not (isinstance(space.trials, int) and 1 <= space.trials <= MAX_TRIALS):
        raise SpecError(f"trials: a whole number from 1 to {MAX_TRIALS}, got {space.trials!r}")
    if space.minutes is not None and not (isinstance(space.minutes, (int, float)) and 0 < space.minutes <= MAX_MINUTES):
        raise SpecError(f"minutes: above 0 and at most {MAX_MINUTES}, got {space.minutes!r}")
    return space


def dropout_values(space: SearchSpace) -> int:
    return int(round((space.dropout[1] - space.dropout[0]) / DROPOUT_STEP)) + 1


def configurations(space: SearchSpace) -> int:
    """How many different stacks the space holds (the learning rate counted as one: it is continuous)."""
    widths = space.width[1] - space.width[0] + 1
    dense = sum(widths ** n for n in range(space.layers[0], space.layers[1] + 1))
    conv = sum(len(space.filters) ** n for n in range(space.conv_blocks[0], space.conv_blocks[1] + 1))
    shared = (len(space.activations) * dropout_values(space) * len(space.batch_norm) * len(space.batch_sizes)
              * len(space.lr_schedules))
    return dense * conv * shared


def describe_size(space: SearchSpace) -> str:
    """The number of configurations as people read it, e.g. '8.3 × 10^12 stacks' or '4,320 stacks'."""
    n = configurations(space)
    if n < 1_000_000:
        return f"{n:,} stacks"
    exponent = int(math.log10(n))
    return f"{n / 10 ** exponent:.1f} × 10^{exponent} stacks"


def most_params(space: SearchSpace) -> int:
    """The parameters of the largest stack the space holds: its most layers at its widest, batch-norm if
    it may, and each number of conv blocks it allows with its most filters (more blocks can mean fewer
    parameters, their pooling shrinking what the dense layers see)."""
    most = 0
    for blocks in range(space.conv_blocks[0], space.conv_blocks[1] + 1):
        layers = max(space.layers[1], 0 if blocks else 1)
        spec = ModelSpec(layers=tuple(DenseLayer(space.width[1], batch_norm=True in space.batch_norm) for _ in range(layers)),
                         conv=tuple(ConvBlock(max(space.filters)) for _ in range(blocks)))
        most = max(most, count_params(spec))
    return most


def placeholder_spec(space: SearchSpace) -> ModelSpec:
    """The spec a search's own run row carries (every row has one): the space's training settings."""
    return validate(ModelSpec(layers=(DenseLayer(128), DenseLayer(64)), epochs=space.epochs, val_split=space.val_split, seed=space.seed))


def suggest(space: SearchSpace, trial) -> ModelSpec:
    """One configuration, asked of an Optuna trial, as the ModelSpec a trial trains."""
    conv_blocks = trial.suggest_int("conv_blocks", *space.conv_blocks) if space.conv_blocks[1] > 0 else 0
    fewest = max(space.layers[0], 0 if conv_blocks else 1)
    n_layers = trial.suggest_int("layers", fewest, max(space.layers[1], fewest))
    widths = [trial.suggest_int(f"width_{i + 1}", *space.width, log=True) for i in range(n_layers)]
    activation = trial.suggest_categorical("activation", list(space.activations))
    low, high = space.dropout
    dropout = trial.suggest_float("dropout", low, high, step=DROPOUT_STEP) if high > low else low
    batch_norm = trial.suggest_categorical("batch_norm", list(space.batch_norm))
    filters = [trial.suggest_categorical(f"filters_{i + 1}", list(space.filters)) for i in range(conv_blocks)]
    learning_rate = trial.suggest_float("learning_rate", *space.learning_rate, log=True)
    batch_size = trial.suggest_categorical("batch_size", list(space.batch_sizes))
    lr_schedule = trial.suggest_categorical("lr_schedule", list(space.lr_schedules))
    return validate(ModelSpec(
        layers=tuple(DenseLayer(w, activation, round(dropout, 2), batch_norm) for w in widths),
        conv=tuple(ConvBlock(f, activation=activation) for f in filters),
        learning_rate=learning_rate, batch_size=batch_size, lr_schedule=lr_schedule, epochs=space.epochs,
        val_split=space.val_split, seed=space.seed,
    ))

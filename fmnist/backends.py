"""Which Keras backend trains a run and in which precision: the settings people give, auto's rules,
and the names of devices.

Pure Python: the Train page shows what auto picks for the stack on screen without loading Keras.
The training process turns the choice into KERAS_BACKEND before it imports Keras
(fmnist.keras_start), since Keras fixes its backend once per process.
"""

import os
from dataclasses import replace

from fmnist import models
from fmnist.models import ModelSpec

BACKENDS = ("tensorflow", "jax")
SETTINGS = ("auto", *BACKENDS)
# The setting of runs started without one (the app's default, and `train` without --backend).
SETTING_ENV = "FMNIST_BACKEND"
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX"}


def check_setting(value: str, where: str = "backend") -> str:
    if value not in SETTINGS:
        raise ValueError(f"{where}: one of {', '.join(SETTINGS)}, got {value!r}")
    return value


def default_setting() -> str:
    """FMNIST_BACKEND, or auto; ValueError naming the variable when it holds something else."""
    return check_setting(os.environ.get(SETTING_ENV, "").strip().lower() or "auto", where=SETTING_ENV)


def auto_backend(spec: ModelSpec) -> str:
    """The backend that trains this spec fastest on a CPU (docs/engines.md, "Which engine trains a run").

    JAX for dense stacks: its compiled step has far less overhead per batch. TensorFlow wherever a
    conv block is present, because XLA's CPU convolutions are several times slower than
    TensorFlow's oneDNN ones; and for augmentation, whose image transforms are slower under JAX too.
    """
    return "tensorflow" if spec.conv or spec.augment else "jax"


def resolve(spec: ModelSpec, setting: str | None) -> str:
    setting = check_setting(setting or "auto")
    return auto_backend(spec) if setting == "auto" else setting


def setting_label(setting: str, spec: ModelSpec | None = None) -> str:
    """How the Train page names a setting: 'auto (JAX for this stack)'."""
    if setting == "auto" and spec is not None:
        return f"auto ({LABELS[auto_backend(spec)]} for this stack)"
    return LABELS.get(setting, setting)


def engine_label(run) -> str | None:
    """The backend that trained a run (a fmnist.runs.Run) as people write it, 'JAX'; while it is
    queued, what it asked for, 'auto (asked)'."""
    if run.backend:
        return LABELS.get(run.backend, run.backend)
    return f"{run.backend_setting} (asked)" if run.backend_setting and run.status == "queued" else None


# --- precision: the spec's mixed_precision, "auto" (the default), True or False ---

PRECISION_SETTINGS = ("auto", True, False)
PRECISION_LABELS = {True: "bfloat16", False: "float32"}


def auto_mixed_precision(spec: ModelSpec, cpu_bfloat16: bool | None, gpu: bool) -> bool:
    """What auto chooses: bfloat16 on a GPU, and on a CPU with bfloat16 instructions for a stack with
    conv blocks; float32 everywhere else (docs/precision.md).

    On a CPU without them (AVX2 only, most laptops) bfloat16 is emulated and several times slower; on
    one with them it halves a conv epoch but gains nothing for a dense stack, whose steps are bound by
    their fixed costs, not by arithmetic. A CPU whose flags cannot be read (None) counts as without."""
    return gpu or (cpu_bfloat16 is True and bool(spec.conv))


def mixed_precision_for(spec: ModelSpec, gpu: bool = False) -> bool:
    """Whether this machine trains the spec in bfloat16: a person's True or False as given, auto by its rule."""
    if spec.mixed_precision == "auto":
        return auto_mixed_precision(spec, models.cpu_has_bfloat16(), gpu)
    return spec.mixed_precision


def with_precision_resolved(spec: ModelSpec, gpu: bool = False) -> ModelSpec:
    """The spec as this machine trains it: mixed_precision True or False, never auto."""
    return replace(spec, mixed_precision=mixed_precision_for(spec, gpu))


def precision_label(setting, spec: ModelSpec | None = None) -> str:
    """How the Train page names a precision setting: 'auto (float32 here)', 'bfloat16', 'float32'."""
    if setting == "auto":
        if spec is None:
            return "auto"
        return f"auto ({PRECISION_LABELS[mixed_precision_for(spec)]} here)"
    return PRECISION_LABELS[setting]


def bfloat16_slower_here(spec: ModelSpec) -> bool:
    """A person chose bfloat16 on a CPU known to lack bfloat16 instructions (a GPU may still train it)."""
    return spec.mixed_precision is True and models.cpu_has_bfloat16() is False

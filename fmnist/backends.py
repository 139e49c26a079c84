"""Which Keras backend trains a run: the setting people give, auto's rule, and the names of devices.

Pure Python: the Train page shows what auto picks for the stack on screen without loading Keras.
The training process turns the choice into KERAS_BACKEND before it imports Keras
(fmnist.keras_start), since Keras fixes its backend once per process.
"""

import os

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

"""Starting Keras on the backend chosen for a run, in the training process, before anything imports Keras.

Keras reads KERAS_BACKEND once, when it is first imported, and keeps that backend for the
life of the process; the command line's train path calls `start_keras` just before it loads
the engine (fmnist.training). A backend that is not installed or fails to start falls back to
TensorFlow, saying why on stderr (the run's train.log when the app started it).
"""

import os
import sys

from fmnist.backends import LABELS
from fmnist.machine import cpu_name


def why_not(backend: str) -> str | None:
    """None when the backend's own library imports and finds a device; else what went wrong."""
    if backend != "jax":  # TensorFlow is the app's own backend: it is always there
        return None
    try:
        import jax

        jax.devices()
    except Exception as e:  # a missing package, a broken jaxlib, a plugin that cannot start
        return f"{type(e).__name__}: {e}"
    return None


def start_keras(backend: str, log=None) -> str:
    """Import Keras on `backend` (tensorflow or jax), or on TensorFlow when that cannot start;
    returns the backend Keras runs on."""
    log = log or sys.stderr
    if "keras" not in sys.modules:
        problem = why_not(backend)
        if problem:
            print(f"The {LABELS[backend]} backend cannot start ({problem}); this run trains on TensorFlow instead. "
                  f"Install it with ./setup.sh, or choose the backend tensorflow.", file=log, flush=True)
            backend = "tensorflow"
        os.environ["KERAS_BACKEND"] = backend
        if backend == "jax":
            cache_jax_compilations()
        import_keras_without_its_optional_integrations()
    import keras

    actual = keras.backend.backend()
    if actual != backend:  # e.g. several trainings in one process (seed-table) asking for different backends
        print(f"Keras already runs on {actual} in this process: this run trains on {actual}, not {backend}.", file=log, flush=True)
    return actual


# Libraries Keras imports when it starts only to accept their objects (scikit-learn for its wrappers,
# keras.wrappers; pandas for DataFrames as training data), neither of which the app hands it.
KERAS_OPTIONAL = ("sklearn", "pandas")


def import_keras_without_its_optional_integrations() -> None:
    """Keras is told KERAS_OPTIONAL are absent while it starts, so those integrations stay off: a good
    part of Keras' start, paid by every training before its first batch (docs/performance.md, "The
    test suite"). Each imports as usual afterwards (t-SNE uses scikit-learn)."""
    hidden = [name for name in KERAS_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError, as Keras expects when it is missing
    try:
        import keras  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


def cache_jax_compilations() -> None:
    """JAX's persistent compilation cache in the run store's folder: a spec trained before (the same
    layers, batch size and optimizer) skips compiling its training step, the larger part of a small
    run's start. Any compilation is kept (JAX's default keeps only those over a second)."""
    import jax

    from fmnist.home import cache_dir

    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def device_name(backend: str) -> str:
    """Where the backend computes: the GPU's name when it uses one, else the CPU's model name."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            return device.device_kind
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return cpu_name()

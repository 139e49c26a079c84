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
        import_keras_without_its_sklearn_wrappers()
    import keras

    actual = keras.backend.backend()
    if actual != backend:  # e.g. several trainings in one process (seed-table) asking for different backends
        print(f"Keras already runs on {actual} in this process: this run trains on {actual}, not {backend}.", file=log, flush=True)
    return actual


def import_keras_without_its_sklearn_wrappers() -> None:
    """Keras imports scikit-learn when it starts, for its scikit-learn wrappers (keras.wrappers), which
    the app never uses: a fifth of Keras' start (0.7 of 3.5 s on the project's AMD EPYC), paid by every
    training before its first batch. Keras is told scikit-learn is absent while it starts, so the
    wrappers stay switched off; scikit-learn itself imports as usual afterwards (t-SNE uses it)."""
    had = "sklearn" in sys.modules
    if not had:
        sys.modules["sklearn"] = None  # `import sklearn` raises ImportError, as Keras expects when it is missing
    try:
        import keras  # noqa: F401
    finally:
        if not had:
            del sys.modules["sklearn"]


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

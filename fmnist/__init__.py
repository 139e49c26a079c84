"""Fashion-MNIST Studio: the library behind the dashboard and the CLI."""

import os

# On a GPU machine the app (TensorFlow, for its predictions) and a training process (JAX or
# TensorFlow) share the GPU: each takes memory as it needs it, instead of most of it at start.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

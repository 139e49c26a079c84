"""The Keras model of a spec, built layer by layer from its plan (fmnist.models.layer_plan)."""

import keras

from fmnist.dataset import FASHION_MNIST, DatasetInfo
from fmnist.models import ModelSpec, layer_plan, stack_name


def build_model(spec: ModelSpec, info: DatasetInfo = FASHION_MNIST) -> keras.Sequential:
    """The spec's network for info's images and classes, with the layer names, shapes and parameter counts of its plan."""
    model_layers = [keras.Input(shape=info.input_shape)]
    for planned in layer_plan(spec, info):
        dtype = "mixed_bfloat16" if planned.mixed_precision else None
        layer_class = getattr(keras.layers, planned.type)
        model_layers.append(layer_class(**dict(planned.args), name=planned.name, dtype=dtype))
    return keras.Sequential(model_layers, name=stack_name(spec).replace("-", "_"))

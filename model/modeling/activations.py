"""The nonlinearities a config can name: "relu" (the default everywhere) and "swish"
(x * sigmoid(x), after every batch norm in tensorflow/tpu's SpineNet recipes)."""
from typing import Callable

import tensorflow as tf

ACTIVATIONS = {"relu": tf.nn.relu, "swish": tf.nn.silu}


def activation_function(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def activation_layer(name: str) -> tf.keras.layers.Layer:
    """The nonlinearity as a layer (Keras' ReLU layer for "relu")."""
    function = activation_function(name)
    return tf.keras.layers.ReLU() if name == "relu" else tf.keras.layers.Activation(function)

"""tf_keras (Keras 2) twins of the built-in models: what a team coming from tf.keras runs.

Built with tf_keras's own layers, same layer names and options as the Keras 3 builders
(models/*.py), and the Keras 3 weights set layer by layer: Keras 2 keeps the same layouts
(kernels (in, out) and (*k, in, out), one LSTM bias, gates [i, f, c, o]), so the port is
by name, with each layer's weights in its own order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers


class ElementwiseScale(layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],))

    def call(self, x):
        return x * self.scale


class BranchSelect(layers.Layer):
    """The conditional layer, with tf.cond on a scalar predicate."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.branch_a = layers.Dense(units, name="branch_a")
        self.branch_b = layers.Dense(units, name="branch_b")

    def call(self, inputs):
        x, flag = inputs
        return tf.cond(tf.reduce_mean(flag) > 0.5, lambda: self.branch_a(x), lambda: self.branch_b(x))


def dense_nobias():
    x = keras.Input((5,), name="x")
    return keras.Model(x, layers.Dense(3, use_bias=False, name="dense")(x))


def sigmoid_mlp():
    x = keras.Input((5,), name="x")
    h = layers.Dense(10, activation="sigmoid", name="hidden")(x)
    return keras.Model(x, layers.Dense(1, name="out")(h))


def scale_layer():
    x = keras.Input((6,), name="x")
    return keras.Model(x, ElementwiseScale(name="scale")(x))


def branch_select():
    x, flag = keras.Input((5,), name="x"), keras.Input((1,), name="flag")
    return keras.Model([x, flag], BranchSelect(3, name="select")([x, flag]))


def conv2d():
    x = keras.Input((8, 8, 3), name="x")
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_s1")(x)
    h = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv_s2")(h)
    return keras.Model(x, layers.Dense(3, name="head")(layers.Flatten(name="flatten")(h)))


def conv1d(padding):
    def build():
        x = keras.Input((7, 2), name="x")
        return keras.Model(x, layers.Conv1D(4, 3, padding=padding, name="conv")(x))

    return build


def bn_mlp():
    x = keras.Input((8,), name="x")
    h = layers.Dense(16, name="dense_in")(x)
    h = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name="bn")(h)
    return keras.Model(x, layers.Dense(4, name="dense_out")(layers.ReLU(name="relu")(h)))


def lstm():
    x = keras.Input((10, 1), name="x")
    return keras.Model(x, layers.Dense(1, name="out")(layers.LSTM(10, name="lstm")(x)))


def resnet50():
    x = keras.Input((224, 224, 3), name="x")
    return keras.applications.ResNet50(weights=None, input_tensor=x, classifier_activation=None)


TWINS = {
    "dense_nobias": dense_nobias,
    "sigmoid_mlp": sigmoid_mlp,
    "scale_layer": scale_layer,
    "branch_select": branch_select,
    "conv2d": conv2d,
    "conv1d_same": conv1d("same"),
    "conv1d_valid": conv1d("valid"),
    "bn_mlp": bn_mlp,
    "lstm": lstm,
    "resnet50": resnet50,
}
# Keras 3 variable paths of the layers whose Keras 2 weight names differ.
KERAS3_SCOPE = {"lstm": "lstm/lstm_cell"}
_LEAVES = {
    layers.Dense: ("kernel", "bias"),
    layers.Conv1D: ("kernel", "bias"),
    layers.Conv2D: ("kernel", "bias"),
    layers.BatchNormalization: ("gamma", "beta", "moving_mean", "moving_variance"),
    layers.LSTM: ("kernel", "recurrent_kernel", "bias"),
    ElementwiseScale: ("scale",),
}


def build(builder: str, weights: dict[str, np.ndarray]):
    model = TWINS[builder]()
    for layer in model.layers:
        if isinstance(layer, BranchSelect):
            for sub in (layer.branch_a, layer.branch_b):
                sub.set_weights([weights[f"{layer.name}/{sub.name}/{leaf}"] for leaf in ("kernel", "bias")])
        elif layer.weights:
            scope = KERAS3_SCOPE.get(layer.name, layer.name)
            leaves = next(v for k, v in _LEAVES.items() if isinstance(layer, k))[: len(layer.weights)]
            layer.set_weights([weights[f"{scope}/{leaf}"] for leaf in leaves])
    return model


def run(model, mode: str, inputs: dict[str, np.ndarray], bn_paths: list[str]) -> dict[str, np.ndarray]:
    xs = list(inputs.values())
    y = model(xs if len(xs) > 1 else xs[0], training=mode != "infer")
    if mode != "moving_stats":
        return {"output": y.numpy()}
    by_name = {layer.name: layer for layer in model.layers}
    return {p: getattr(by_name[p.split("/")[0]], p.rsplit("/", 1)[1]).numpy() for p in bn_paths}

"""Linear models: a bias-free Dense, a sigmoid MLP and two custom layers written with keras.ops."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_parity")
class ElementwiseScale(layers.Layer):
    """y = x * scale, one learned scale per feature."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],))

    def call(self, x):
        return ops.multiply(x, self.scale)


@keras.saving.register_keras_serializable(package="keras_parity")
class BranchSelect(layers.Layer):
    """Applies branch_a when mean(flag) > 0.5, else branch_b, through keras.ops.cond."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.branch_a = layers.Dense(units, name="branch_a")
        self.branch_b = layers.Dense(units, name="branch_b")

    def build(self, input_shape):
        x_shape, _ = input_shape
        self.branch_a.build(x_shape)
        self.branch_b.build(x_shape)

    def call(self, inputs):
        x, flag = inputs
        # A scalar predicate: lax.cond and tf.cond both need one.
        pred = ops.greater(ops.mean(flag), 0.5)
        return ops.cond(pred, lambda: self.branch_a(x), lambda: self.branch_b(x))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def dense_nobias():
    x = keras.Input((5,), name="x")
    y = layers.Dense(3, use_bias=False, name="dense")(x)
    return keras.Model(x, y, name="dense_nobias")


def sigmoid_mlp():
    x = keras.Input((5,), name="x")
    h = layers.Dense(10, activation="sigmoid", name="hidden")(x)
    y = layers.Dense(1, name="out")(h)
    return keras.Model(x, y, name="sigmoid_mlp")


def scale_layer():
    x = keras.Input((6,), name="x")
    y = ElementwiseScale(name="scale")(x)
    return keras.Model(x, y, name="scale_layer")


def branch_select():
    x = keras.Input((5,), name="x")
    flag = keras.Input((1,), name="flag")
    y = BranchSelect(3, name="select")([x, flag])
    return keras.Model([x, flag], y, name="branch_select")

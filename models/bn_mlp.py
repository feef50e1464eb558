"""Dense -> BatchNormalization -> ReLU -> Dense."""

import keras
from keras import layers


def bn_mlp():
    x = keras.Input((8,), name="x")
    h = layers.Dense(16, name="dense_in")(x)
    h = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name="bn")(h)
    h = layers.ReLU(name="relu")(h)
    y = layers.Dense(4, name="dense_out")(h)
    return keras.Model(x, y, name="bn_mlp")

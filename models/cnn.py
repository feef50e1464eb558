"""Convolutions: 'same' padding at stride 1 and 2 (asymmetric), and Conv1D 'same'/'valid'."""

import keras
from keras import layers


def conv2d():
    x = keras.Input((8, 8, 3), name="x")
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_s1")(x)
    # 8 -> 4 at stride 2 with k=3: 'same' pads 0 rows/cols before and 1 after,
    # the asymmetric case that symmetric-padding ports get wrong.
    h = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv_s2")(h)
    h = layers.Flatten(name="flatten")(h)
    y = layers.Dense(3, name="head")(h)
    return keras.Model(x, y, name="conv2d")


def conv1d_same():
    x = keras.Input((7, 2), name="x")
    y = layers.Conv1D(4, 3, padding="same", name="conv")(x)
    return keras.Model(x, y, name="conv1d_same")


def conv1d_valid():
    x = keras.Input((7, 2), name="x")
    y = layers.Conv1D(4, 3, padding="valid", name="conv")(x)
    return keras.Model(x, y, name="conv1d_valid")

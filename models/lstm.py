"""LSTM(10) over length-10 sequences of one feature, then Dense(1)."""

import keras
from keras import layers


def lstm():
    x = keras.Input((10, 1), name="x")
    h = layers.LSTM(10, name="lstm")(x)
    y = layers.Dense(1, name="out")(h)
    return keras.Model(x, y, name="lstm")

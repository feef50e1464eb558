"""`Normalization` ignores statistics set with `set_weights` until `finalize_state()`.

After `layer.set_weights([mean, variance, count])` the layer keeps normalizing with the
statistics it was built with (mean 0, variance 1) until `finalize_state()` is called (loading
a saved model calls it): the outputs equal the inputs instead of (x - mean) / sqrt(variance).
"""

import json

import keras
import numpy as np


def check() -> dict:
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    mean, var = np.array([1.0, 2.0, 3.0], "float32"), np.array([4.0, 4.0, 4.0], "float32")
    layer = keras.layers.Normalization(axis=-1)
    layer.build((None, 3))
    layer.set_weights([mean, var, np.array(2, "int64")][: len(layer.get_weights())])
    got = keras.ops.convert_to_numpy(layer(x)).astype(np.float64)
    off = float(np.abs(got - (x - mean) / np.sqrt(var)).max())
    return {
        "present": off > 1e-6,
        "measure": off,
        "detail": f"after set_weights the output is {off:.2f} from (x - mean) / sqrt(variance) until finalize_state()",
    }


if __name__ == "__main__":
    print(json.dumps(check()))

"""Makes a user's project for tests/test_user_models.py: saved models the suite's code does not
define, a custom layer module, builders, inputs. Run by a backend environment's python:

    python user_project.py DIR
"""

import sys
from pathlib import Path

import keras
import numpy as np

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
(out / "mylayers.py").write_text(
    '''import keras


@keras.saving.register_keras_serializable(package="user")
class Doubler(keras.layers.Layer):
    """A custom layer: 2x + an offset per feature, a weight of its own."""

    def build(self, input_shape):
        self.offset = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="offset")

    def call(self, x):
        return 2.0 * x + self.offset
'''
)
(out / "mybuilders.py").write_text(
    """import keras


def build():
    x = keras.Input((5,), name="x")
    return keras.Model(x, keras.layers.Dense(3, activation="tanh", name="out")(keras.layers.Dense(4, name="h")(x)))


def fails_on_torch():
    if keras.backend.backend() == "torch":
        raise NotImplementedError("this model does not build on torch")
    return build()
"""
)
sys.path.insert(0, str(out))
import mylayers  # noqa: E402

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)

# Sequential, every layer in the float64 reference
seq = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)], name="seq")
seq.save(out / "seq.keras")
np.savez(out / "seq_inputs.npz", input_layer=rng.uniform(-1, 1, (5, 6)).astype("float32"))
np.savez(out / "seq_wrong_name.npz", features=rng.uniform(-1, 1, (5, 6)).astype("float32"))
np.savez(out / "seq_wrong_shape.npz", input_layer=rng.uniform(-1, 1, (5, 7)).astype("float32"))
np.savez(out / "seq_wrong_dtype.npz", input_layer=rng.integers(-1, 2, (5, 6)).astype(np.int32))  # ints for floats

# Functional with a custom layer the reference lacks (and trained-looking weights)
x = keras.Input((4,), name="x")
h = mylayers.Doubler(name="doubler")(keras.layers.Dense(4, name="d1")(x))
custom = keras.Model(x, keras.layers.Dense(3, name="d2")(keras.layers.LayerNormalization(name="ln")(h)), name="custom")
custom.get_layer("doubler").offset.assign(rng.uniform(-0.5, 0.5, 4).astype("float32"))
custom.save(out / "custom.keras")

# A damaged archive, a Keras 2 style HDF5 file
data = (out / "seq.keras").read_bytes()
(out / "broken.keras").write_bytes(data[: len(data) // 2])
seq.save(out / "legacy.h5")
if keras.backend.backend() == "tensorflow":
    seq.export(out / "saved_model")  # a TensorFlow SavedModel directory
print("made", sorted(p.name for p in out.iterdir()))

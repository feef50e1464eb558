"""$model/$case: Keras on $backend against a float64 reference (keras-parity reproducer).

Run: python repro.py (KERAS_BACKEND in the environment runs it on another backend).
"""

BACKEND = "tensorflow"  # the backend the suite measured
PATHS = ["predict"]  # predict: model.predict_on_batch(x); eager/call: model(x, training=TRAINING)
TRAINING = False
INPUTS = ["x"]  # inputs.npz's arrays, in the model's input order
AS_LIST = False  # the model takes a list of inputs
CUSTOM = []  # modules beside this script that define the model's own layers
# What the suite sets before the backend is imported: one compute thread, deterministic kernels.
SETTINGS = {}

import importlib
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", BACKEND)
for name, value in SETTINGS.items():
    os.environ.setdefault(name, value)

import keras  # after KERAS_BACKEND and the settings are set
import numpy as np


def norm(a):
    """||a|| as the suite computes it: NumPy's own sum of squares, not BLAS, whose kernels
    sum in another order on another CPU."""
    return float(np.sqrt(np.add.reduce(np.square(np.asarray(a, dtype=np.float64).reshape(-1)))))


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
for module in CUSTOM:
    importlib.import_module(module)  # registers the model's own layer classes

backend = keras.backend.backend()
# The suite's settings after import: one thread, deterministic kernels, float32 matmuls in float32.
if backend == "tensorflow":
    import tensorflow as lib

    lib.config.threading.set_intra_op_parallelism_threads(1)
    lib.config.threading.set_inter_op_parallelism_threads(1)
    lib.config.experimental.enable_op_determinism()
elif backend == "jax":
    import jax as lib

    lib.config.update("jax_default_matmul_precision", "highest")
else:
    import torch as lib

    lib.set_num_threads(1)
    lib.set_num_interop_threads(1)
    lib.use_deterministic_algorithms(True)

model = keras.Model.from_config(json.loads((HERE / "model.json").read_text()))
with np.load(HERE / "weights.npz") as w:
    model.set_weights([w[k] for k in w.files])  # stored in model.weights order
# repro: when normalization
# set_weights leaves a Normalization layer's statistics at their build-time values; loading
# a saved model derives them from its weights, and so does the suite.
for layer in model.layers:
    if isinstance(layer, keras.layers.Normalization):
        layer.finalize_state()
# repro: end
with np.load(HERE / "inputs.npz") as z:
    xs = [z[n] for n in INPUTS]
x = xs if AS_LIST else xs[0]
with np.load(HERE / "expected.npz") as e:
    expected = {k: e[k] for k in e.files}

versions = [("python", platform.python_version()), ("numpy", np.__version__), ("keras", keras.__version__)]
print(", ".join(f"{k} {v}" for k, v in [*versions, (backend, lib.__version__)]))
for path in PATHS:
    y = model.predict_on_batch(x) if path == "predict" else model(x, training=TRAINING)
    for i, out in enumerate(keras.tree.flatten(y)):
        key = "output" if i == 0 else f"output:{i}"
        got = np.asarray(keras.ops.convert_to_numpy(out)).astype(np.float64)
        diff = np.abs(got - expected[key])
        rel = norm(diff) / norm(expected[key])
        print(f"{backend} {path} {key}: rel L2 {rel:.4e}, max abs {diff.max():.4e} (vs float64)")

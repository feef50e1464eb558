"""Float64 layers and ops that compute in float32 (keras-team/keras#23704 and kin).

`dtypes.result_type` maps float64 to float32 on every backend but TensorFlow when a Python
float or a second float64 meets it: `keras.ops.matmul` of two float64 tensors runs in float32
on torch (a `Dense(..., dtype="float64")` is 1e-7 from NumPy's float64 product, where
float64 gives 1e-16), and `keras.ops.tanh` of a float64 tensor returns float32 on JAX with x64
enabled. `BatchNormalization(dtype="float64")` computes through float32 on JAX and torch
(about 5e-8). `python -m keras_parity.watch.cases.float64_ops matmul` runs one (on JAX with
x64 switched on, as JAX_ENABLE_X64=1 would).
"""

import json
import sys

import keras
import numpy as np

from keras_parity.watch.cases import float64_mode

X = (np.arange(24.0).reshape(4, 6) - 11.5) / 6.0  # float64, in [-1.9, 1.9]


def _matmul():
    w = np.cos(np.arange(48.0)).reshape(6, 8)
    dense = keras.layers.Dense(8, use_bias=False, dtype="float64")
    dense.build(X.shape)
    dense.set_weights([w])
    got = dense(keras.ops.convert_to_tensor(X, "float64"))
    a = keras.ops.convert_to_tensor(X, "float64")
    return got, X @ w, keras.backend.standardize_dtype(keras.ops.matmul(a, keras.ops.transpose(a)).dtype)


def _tanh():
    got = keras.ops.tanh(keras.ops.convert_to_tensor(X, "float64"))
    return got, np.tanh(X), keras.backend.standardize_dtype(got.dtype)


def _batch_norm():
    bn = keras.layers.BatchNormalization(dtype="float64", epsilon=1e-3)
    bn.build(X.shape)
    mean, var = np.linspace(-0.1, 0.1, 6), np.linspace(0.8, 1.2, 6)
    bn.set_weights([np.ones(6), np.zeros(6), mean, var])
    got = bn(keras.ops.convert_to_tensor(X, "float64"), training=False)
    return got, (X - mean) / np.sqrt(var + 1e-3), keras.backend.standardize_dtype(got.dtype)


def check(name: str = "matmul") -> dict:
    with float64_mode():
        got, want, dtype = {"matmul": _matmul, "tanh": _tanh, "batch_norm": _batch_norm}[name]()
        got = keras.ops.convert_to_numpy(got).astype(np.float64)
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    return {"present": rel > 1e-12, "measure": rel, "detail": f"float64 {name} gives {dtype}, {rel:.1e} from float64"}


if __name__ == "__main__":
    print(json.dumps(check(*sys.argv[1:2])))

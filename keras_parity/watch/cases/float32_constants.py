"""Python-float constants of float64 layers go through float32 (TensorFlow, and some on torch).

`tf.cast` of a Python float builds a float32 tensor first, and `tf.nn.leaky_relu`'s alpha is a
float32 attribute, so in a float64 model these layers carry float32 constants: `Rescaling`'s
scale, exact `gelu`'s 1/sqrt(2), `LeakyReLU`'s slope, the statistics given to
`Normalization(mean=..., variance=...)` and MultiHeadAttention's 1/sqrt(key_dim). Each departs
from the float64 computation by about 1e-9 relative, 10^7 times float64's rounding.
`python -m keras_parity.watch.cases.float32_constants rescaling` runs one.
"""

import json
import math
import sys

import keras
import numpy as np

from keras_parity.watch.cases import float64_mode

X = np.linspace(-2.0, 2.0, 24).reshape(2, 3, 4)  # float64


def _erf(v):
    return np.vectorize(math.erf)(v)


def _layers():
    """name -> (a call of the float64 layer on a tensor, its exact float64 function of X)."""
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=3, dtype="float64")
    x = keras.ops.convert_to_tensor(X, "float64")
    mha(x, x)  # built, then given fixed weights (its initializers draw from the backend's RNG)
    mha.set_weights([np.cos(np.arange(w.size)).reshape(w.shape) * 2 for w in mha.get_weights()])
    norm = keras.layers.Normalization(mean=0.1, variance=0.7, dtype="float64")
    return {
        "rescaling": (keras.layers.Rescaling(1 / 255, dtype="float64"), lambda x: x * (1 / 255)),
        "gelu": (keras.layers.Activation("gelu", dtype="float64"), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
        "leaky_relu": (keras.layers.LeakyReLU(0.3, dtype="float64"), lambda x: np.where(x > 0, x, 0.3 * x)),
        "normalization": (norm, lambda x: (x - 0.1) / math.sqrt(0.7)),
        "attention_scale": (lambda t: mha(t, t), lambda x: _attention(mha, x)),
    }


def _attention(mha, x):
    """MultiHeadAttention's forward in float64 NumPy from its own weights (query = value = x)."""
    wq, bq, wk, bk, wv, bv, wo, bo = [np.asarray(w, np.float64) for w in mha.get_weights()]
    q, k, v = (np.einsum("btd,dhk->bthk", x, w) + b for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    s = np.einsum("bqhk,bshk->bhqs", q / math.sqrt(q.shape[-1]), k)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bqhk,hkd->bqd", np.einsum("bhqs,bshk->bqhk", p, v), wo) + bo


def check(name: str = "rescaling") -> dict:
    with float64_mode():
        layer, exact = _layers()[name]
        got = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(X, "float64"))).astype(np.float64)
        want = exact(X)
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    return {"present": rel > 1e-12, "measure": rel, "detail": f"float64 {name} is {rel:.1e} from float64 math"}


if __name__ == "__main__":
    print(json.dumps(check(*sys.argv[1:2])))

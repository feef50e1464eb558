"""Native JAX twins of the built-in models: pure functions of a parameter tree, written with
jax.numpy and jax.lax (lax.conv_general_dilated with explicit padding, jnp.dot, lax.scan),
as a team porting the Keras models to plain JAX would write them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from keras_parity.twins import port

_DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def dense(p, x):
    y = jnp.dot(x, p["kernel"], precision=lax.Precision.HIGHEST)
    return y + p["bias"] if "bias" in p else y


def conv(p, x, stride=1, padding="valid"):
    """padding: 'valid', or Keras 'same' as explicit (before, after) pairs per spatial axis."""
    k = p["kernel"].shape[:-2]
    pads = (
        [(0, 0)] * len(k) if padding == "valid" else [port.same_pads(n, kk, stride) for n, kk in zip(x.shape[1:-1], k)]
    )
    y = lax.conv_general_dilated(
        x, p["kernel"], (stride,) * len(k), pads, dimension_numbers=_DN[len(k)], precision=lax.Precision.HIGHEST
    )
    return y + p["bias"]


def batch_norm(p, x, epsilon, momentum, training):
    """(y, new moving statistics). Keras's rule: the moving statistics keep `momentum` of
    their old value and move towards the biased batch variance."""
    axes = tuple(range(x.ndim - 1))
    if training:
        mean, var = x.mean(axes), x.var(axes)
        moved = {
            "moving_mean": p["moving_mean"] * momentum + mean * (1 - momentum),
            "moving_variance": p["moving_variance"] * momentum + var * (1 - momentum),
        }
    else:
        mean, var, moved = p["moving_mean"], p["moving_variance"], {}
    return (x - mean) * lax.rsqrt(var + epsilon) * p["gamma"] + p["beta"], moved


def lstm(p, x):
    """Keras's LSTM: gates [i, f, c, o] in one (in, 4u) kernel, one bias; returns h_T."""
    units = p["recurrent_kernel"].shape[0]
    xw = jnp.einsum("btf,fg->btg", x, p["kernel"], precision=lax.Precision.HIGHEST) + p["bias"]

    def step(carry, xt):
        h, c = carry
        z = xt + jnp.dot(h, p["recurrent_kernel"], precision=lax.Precision.HIGHEST)
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((x.shape[0], units), x.dtype)
    (h, _), _ = lax.scan(step, (zeros, zeros), jnp.swapaxes(xw, 0, 1))
    return h


def dense_nobias(p, x):
    return dense(p["dense"], x), {}


def sigmoid_mlp(p, x):
    return dense(p["out"], jax.nn.sigmoid(dense(p["hidden"], x))), {}


def scale_layer(p, x):
    return x * p["scale"]["scale"], {}


def branch_select(p, x, flag):
    """The conditional layer: lax.cond on the flag's mean, as keras.ops.cond lowers on JAX."""
    sel = p["select"]
    return lax.cond(flag.mean() > 0.5, lambda: dense(sel["branch_a"], x), lambda: dense(sel["branch_b"], x)), {}


def conv2d(p, x):
    h = jax.nn.relu(conv(p["conv_s1"], x, 1, "same"))
    h = jax.nn.relu(conv(p["conv_s2"], h, 2, "same"))
    return dense(p["head"], h.reshape(h.shape[0], -1)), {}  # NHWC flattened (H, W, C), as Keras


def conv1d_same(p, x):
    return conv(p["conv"], x, 1, "same"), {}


def conv1d_valid(p, x):
    return conv(p["conv"], x, 1, "valid"), {}


def bn_mlp(p, x, training=False):
    h, moved = batch_norm(p["bn"], dense(p["dense_in"], x), 1e-3, 0.99, training)
    return dense(p["dense_out"], jax.nn.relu(h)), {f"bn/{k}": v for k, v in moved.items()}


def lstm_model(p, x):
    return dense(p["out"], lstm(p["lstm"]["lstm_cell"], x)), {}


def resnet50(p, x, training=False):
    """Keras's ResNet50 (v1): stride on the first 1x1 convolutions, BN epsilon 1.001e-5."""
    moved = {}

    def cbn(name, h, stride=1, padding="valid"):
        y, m = batch_norm(p[f"{name}_bn"], conv(p[f"{name}_conv"], h, stride, padding), 1.001e-5, 0.99, training)
        moved.update({f"{name}_bn/{k}": v for k, v in m.items()})
        return y

    h = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    h = jax.nn.relu(cbn("conv1", h, 2))
    h = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros after a ReLU: a max never changes
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    for stage, _, n, stride in (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2)):
        for i in range(1, n + 1):
            name, s = f"{stage}_block{i}", stride if i == 1 else 1
            short = cbn(f"{name}_0", h, s) if i == 1 else h
            y = jax.nn.relu(cbn(f"{name}_1", h, s))
            y = jax.nn.relu(cbn(f"{name}_2", y, 1, "same"))
            h = jax.nn.relu(short + cbn(f"{name}_3", y))
    return dense(p["predictions"], h.mean((1, 2))), moved


TWINS = {
    "dense_nobias": dense_nobias,
    "sigmoid_mlp": sigmoid_mlp,
    "scale_layer": scale_layer,
    "branch_select": branch_select,
    "conv2d": conv2d,
    "conv1d_same": conv1d_same,
    "conv1d_valid": conv1d_valid,
    "bn_mlp": bn_mlp,
    "lstm": lstm_model,
    "resnet50": resnet50,
}
TRAINING = {"bn_mlp", "resnet50"}  # the twins whose output depends on the training flag


def params(weights: dict[str, np.ndarray]) -> dict:
    """The parameter tree: Keras's variable paths split on '/', leaves ported (port.py)."""
    tree: dict = {}
    for path, w in weights.items():
        *scopes, leaf = path.split("/")
        node = tree
        for s in scopes:
            node = node.setdefault(s, {})
        node[leaf] = port.conv_to_jax(w) if leaf == "kernel" and w.ndim > 2 else port.dense_to_jax(w)
    return jax.tree_util.tree_map(jnp.asarray, tree)


def build(builder: str, weights: dict[str, np.ndarray]):
    return TWINS[builder], params(weights)


def run(model, mode: str, inputs: dict[str, np.ndarray], bn_paths: list[str]) -> dict[str, np.ndarray]:
    fn, p = model
    name = fn.__name__
    kw = {"training": mode != "infer"} if name in TRAINING else {}
    y, moved = jax.jit(lambda p, *xs: fn(p, *xs, **kw))(p, *(jnp.asarray(v) for v in inputs.values()))
    if mode == "moving_stats":
        return {k: np.asarray(moved[k]) for k in bn_paths}
    return {"output": np.asarray(y)}

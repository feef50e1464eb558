"""Weight porting: a Keras model's weights (variable path -> array, Keras's layouts) into a
native twin's parameters. NumPy only. Every conversion says which convention it bridges:
these are the places a hand port goes wrong, and where the tests plant the classic mistakes.
"""

from __future__ import annotations

import numpy as np


def same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    """Keras (TensorFlow) 'same': out = ceil(size / stride), and an odd pixel of padding goes
    after, never before. At stride 2 on an even size the padding is asymmetric; PyTorch's
    padding=k // 2 pads both sides alike and shifts every window by one pixel."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# ------------------------------------------------------------------------------- PyTorch


def dense_to_torch(kernel: np.ndarray) -> np.ndarray:
    # Keras computes x @ kernel with kernel (in, out); nn.Linear stores (out, in), x @ W.T.
    return np.ascontiguousarray(kernel.T)


def conv_to_torch(kernel: np.ndarray) -> np.ndarray:
    # Keras convolution kernels are (*spatial, in, out); torch's are (out, in, *spatial).
    nd = kernel.ndim - 2
    return np.ascontiguousarray(np.transpose(kernel, (nd + 1, nd, *range(nd))))


def lstm_to_torch(kernel, recurrent_kernel, bias) -> dict[str, np.ndarray]:
    """Keras: one bias, gates [i, f, c, o] along the last axis of (in, 4u) and (u, 4u).
    torch: gates [i, f, g, o] (g is Keras's c) along the first axis, and two biases it adds
    together (bias_ih + bias_hh): the whole Keras bias goes into one, zeros into the other."""
    return {
        "weight_ih_l0": dense_to_torch(kernel),
        "weight_hh_l0": dense_to_torch(recurrent_kernel),
        "bias_ih_l0": bias.copy(),
        "bias_hh_l0": np.zeros_like(bias),
    }


def bn_to_torch(gamma, beta, moving_mean, moving_variance) -> dict[str, np.ndarray]:
    # Same numbers, other names; epsilon and momentum are constructor arguments (bn_options).
    return {"weight": gamma, "bias": beta, "running_mean": moving_mean, "running_var": moving_variance}


def bn_options(epsilon: float, momentum: float) -> dict[str, float]:
    """Keras keeps `momentum` of the old moving statistic; torch's momentum is the weight of
    the new batch statistic: 1 - Keras's. Defaults differ too (Keras epsilon 1e-3, torch
    1e-5): both are always passed explicitly."""
    return {"eps": epsilon, "momentum": 1.0 - momentum}


# ------------------------------------------------------------------------------------ JAX


def dense_to_jax(kernel: np.ndarray) -> np.ndarray:
    # jnp.dot(x, w) with w (in, out): Keras's own layout.
    return kernel


def conv_to_jax(kernel: np.ndarray) -> np.ndarray:
    # lax.conv_general_dilated with dimension_numbers (N...C, ...IO, N...C): Keras's layout.
    return kernel

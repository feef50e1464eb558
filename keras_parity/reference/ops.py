"""Float64 math of the Keras 3 layers the reference knows, on plain arrays: what the unit tests
check by hand. keras_parity/reference/layers.py maps Keras classes onto it.
"""

from __future__ import annotations

import functools
import itertools
import math

# autograd's NumPy: plain float64 NumPy on arrays, and differentiable when the training path
# asks for gradients (keras_parity/run/training.py); hence no in-place writes below.
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive


class UnsupportedLayer(ValueError):
    """The reference cannot evaluate this layer type or configuration."""


# ----------------------------------------------------------------------------- activations


def sigmoid(x):
    # exp(-|x|) never overflows, so both tails stay accurate to the last bit.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """keras.activations.relu step by step as ReLU.static_call does it, so the option
    combinations compose the same way (slope applies below threshold, clip only above)."""
    y = np.where(x > threshold, x, 0.0) if threshold != 0 else np.maximum(x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    if negative_slope != 0:
        y = y - negative_slope * np.maximum(threshold - x, 0.0)
    return y


@primitive
def erf(x):
    """The error function, value by value from libm (math.erf), differentiable for autograd."""
    return onp.vectorize(math.erf, otypes=[float])(x)


defvjp(erf, lambda ans, x: lambda g: g * (2.0 / math.sqrt(math.pi)) * np.exp(-(x**2)))


def leaky_relu(x, negative_slope=0.2):
    return np.where(x > 0, x, negative_slope * x)  # keras.activations.leaky_relu's default slope


def softplus(x):
    return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))


def hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0  # keras.ops.hard_sigmoid: relu6(x + 3) / 6


def gelu(x, approximate=False):
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def log_softmax(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def celu(x, alpha=1.0):
    return np.maximum(x, 0.0) + alpha * np.expm1(np.minimum(x, 0.0) / alpha)


def glu(x, axis=-1):
    a, b = np.split(x, 2, axis=axis)  # Keras refuses an odd size along the axis, so does split
    return a * sigmoid(b)


def soft_shrink(x, threshold=0.5):
    return np.where(x > threshold, x - threshold, np.where(x < -threshold, x + threshold, 0.0))


def sparse_plus(x):
    return np.where(x <= -1.0, 0.0, np.where(x < 1.0, 0.25 * (x + 1.0) ** 2, x))


def sparsemax(x, axis=-1):
    """The Euclidean projection onto the simplex (Martins and Astudillo, 2016): the outputs sum
    to one. tau = (sum of the k largest - 1) / k over the support's size k."""
    z = np.moveaxis(x, axis, -1)
    ranked = -np.sort(-z, axis=-1)
    sums = np.cumsum(ranked, axis=-1)
    support = ranked * np.arange(1, z.shape[-1] + 1) > sums - 1.0
    k = np.sum(support, axis=-1, keepdims=True)
    tau = (np.sum(np.where(support, ranked, 0.0), axis=-1, keepdims=True) - 1.0) / k
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # keras.activations.selu
# keras.activations by the names a config records; each as Keras defines it (defaults of
# their keyword arguments: gelu exact, leaky_relu's slope 0.2, elu's and celu's alpha 1, the
# shrinks' threshold 0.5). keras.activations.threshold has no defaults: an Activation cannot
# name it, only the operator (operators.py).
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": lambda x: SELU_SCALE * elu(x, SELU_ALPHA),
    "gelu": gelu,
    "silu": lambda x: x * sigmoid(x),
    "swish": lambda x: x * sigmoid(x),
    "softplus": softplus,
    "softsign": lambda x: x / (np.abs(x) + 1.0),
    "exponential": np.exp,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": lambda x: x * hard_sigmoid(x),
    "hard_swish": lambda x: x * hard_sigmoid(x),
    "mish": lambda x: x * np.tanh(softplus(x)),
    "celu": celu,
    "glu": glu,
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "soft_shrink": soft_shrink,
    "tanh_shrink": lambda x: x - np.tanh(x),
    "log_sigmoid": lambda x: -softplus(-x),
    "sparse_plus": sparse_plus,
    "sparse_sigmoid": lambda x: np.clip(0.5 * (x + 1.0), 0.0, 1.0),
    "sparsemax": sparsemax,
    "squareplus": lambda x: (x + np.sqrt(x**2 + 4.0)) / 2.0,  # its b=4
}


def activation(name, x):
    name = "linear" if name is None else name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedLayer(
            f"float64 reference has no implementation of activation {name!r}; "
            "add one to ACTIVATIONS in keras_parity/reference/ops.py"
        )
    return ACTIVATIONS[name](x)


# ---------------------------------------------------------------------------- dense / conv


def dense(x, kernel, bias=None):
    y = x @ kernel  # matmul broadcasts over leading axes, as ops.matmul does in Dense
    return y if bias is None else y + bias


def same_padding(size, k, stride):
    """TensorFlow 'same': out = ceil(size/stride); any odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def pad_spatial(x, pads, value=0.0):
    """pads: one (before, after) pair per spatial axis of a (batch, *spatial, channels) x."""
    return np.pad(x, [(0, 0), *pads, (0, 0)], mode="constant", constant_values=value)


def _extent(ksize, dilation):
    """The input span of each kernel axis: (k - 1) * dilation + 1."""
    return tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation or (1,) * len(ksize)))


def _padded(x, ksize, strides, padding, value, dilation=None):
    span = _extent(ksize, dilation)
    if padding == "valid":
        return x
    if padding == "same":
        return pad_spatial(x, [same_padding(n, k, s) for n, k, s in zip(x.shape[1:-1], span, strides)], value)
    if padding == "causal" and x.ndim == 3:  # Conv1D: every output sees only the past
        return pad_spatial(x, [(span[0] - 1, 0)], value)
    raise UnsupportedLayer(f"float64 reference does not implement padding={padding!r}")


def _windows(x, ksize, strides, dilation=None):
    """One strided view per kernel offset o, holding x[p*stride + o*dilation] for every output
    p, in C order of the offsets (the order of kernel.reshape(-1, in, out)). Each is a cheap
    slice; together they are the im2col matrix without index arithmetic."""
    if not len(ksize) == len(strides) == x.ndim - 2:
        raise ValueError(f"window {tuple(ksize)} / strides {tuple(strides)} do not fit input {x.shape}")
    dilation = tuple(dilation or (1,) * len(ksize))
    out = [(n - e) // s + 1 for n, e, s in zip(x.shape[1:-1], _extent(ksize, dilation), strides)]
    if min(out) < 1:
        raise ValueError(f"window {tuple(ksize)} does not fit input {x.shape[1:-1]} with 'valid' padding")
    for off in itertools.product(*(range(k) for k in ksize)):
        starts = [o * d for o, d in zip(off, dilation)]
        yield x[(slice(None), *(slice(b, b + (m - 1) * s + 1, s) for b, m, s in zip(starts, out, strides)))]


def conv(x, kernel, bias=None, strides=None, padding="valid", groups=1, dilation=None):
    """N-d channels_last convolution (cross-correlation, as Keras), kernel (*k, in/groups, out).

    im2col into one matrix, then one big matmul: BLAS does the float64 work, which is what
    makes ResNet50 run in seconds. With groups, each group of in/groups input channels feeds
    its out/groups outputs (ConvNeXt's depthwise step is Conv2D(groups=channels))."""
    ksize = kernel.shape[:-2]
    strides = tuple(strides or (1,) * len(ksize))
    if x.shape[-1] != kernel.shape[-2] * groups or x.ndim != kernel.ndim:
        raise ValueError(f"conv: kernel {kernel.shape} with groups={groups} does not fit input {x.shape}")
    x = _padded(x, ksize, strides, padding, 0.0, dilation)
    if groups > 1:
        taps = np.stack(list(_windows(x, ksize, strides, dilation)), axis=-2)  # (..., taps, in)
        cin, cout = kernel.shape[-2], kernel.shape[-1] // groups
        taps = taps.reshape(*taps.shape[:-1], groups, cin)
        k = kernel.reshape(-1, cin, groups, cout)
        y = np.einsum("...tgc,tcgo->...go", taps, k)
        y = y.reshape(*y.shape[:-2], groups * cout)
        return y if bias is None else y + bias
    cols = np.stack(list(_windows(x, ksize, strides, dilation)), axis=-2)
    y = cols.reshape(-1, cols.shape[-2] * cols.shape[-1]) @ kernel.reshape(-1, kernel.shape[-1])
    y = y.reshape(*cols.shape[:-2], kernel.shape[-1])
    return y if bias is None else y + bias


def depthwise_conv(x, kernel, bias=None, strides=None, padding="valid", dilation=None):
    """Each input channel convolved with its own depth_multiplier filters, kernel
    (*k, in, multiplier); output channel c * multiplier + m, as Keras orders them."""
    ksize, (cin, mult) = kernel.shape[:-2], kernel.shape[-2:]
    strides = tuple(strides or (1,) * len(ksize))
    x = _padded(x, ksize, strides, padding, 0.0, dilation)
    taps = np.stack(list(_windows(x, ksize, strides, dilation)), axis=-2)  # (..., taps, cin)
    y = np.einsum("...tc,tcm->...cm", taps, kernel.reshape(-1, cin, mult))
    y = y.reshape(*y.shape[:-2], cin * mult)
    return y if bias is None else y + bias


def avg_pool(x, pool_size, strides=None, padding="valid"):
    """The mean of each window's real pixels: with 'same' padding an edge window divides by
    the pixels it covers, not by the pool size (TensorFlow's avg_pool; Keras documents it)."""
    strides = tuple(strides or pool_size)
    total = functools.reduce(np.add, _windows(_padded(x, pool_size, strides, padding, 0.0), pool_size, strides))
    if padding == "valid":
        return total / float(np.prod(pool_size))
    ones = _padded(np.ones((1, *x.shape[1:-1], 1)), pool_size, strides, padding, 0.0)
    return total / functools.reduce(np.add, _windows(ones, pool_size, strides))


def max_pool(x, pool_size, strides=None, padding="valid"):
    strides = tuple(strides or pool_size)
    # -inf padding can never win a max, so 'same' windows only see real pixels.
    x = _padded(x, pool_size, strides, padding, -np.inf)
    return functools.reduce(np.maximum, _windows(x, pool_size, strides))


# -------------------------------------------------------------------------- normalization


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon, momentum, training=False):
    """Channels on the last axis. Returns (y, new_moving_mean, new_moving_variance); the
    moving statistics come back unchanged in inference mode.

    Training uses the biased batch variance (divide by n, not n-1) both to normalize and
    to update the moving variance: Keras 3 takes both from ops.moments, whereas e.g.
    torch.nn.BatchNorm feeds the unbiased one into its running variance."""
    if training:
        axes = tuple(range(x.ndim - 1))
        mean = x.mean(axis=axes)
        var = ((x - mean) ** 2).mean(axis=axes)  # two-pass: no E[x^2]-E[x]^2 cancellation
        moving_mean = moving_mean * momentum + mean * (1.0 - momentum)
        moving_variance = moving_variance * momentum + var * (1.0 - momentum)
    else:
        mean, var = moving_mean, moving_variance
    y = (x - mean) / np.sqrt(var + epsilon) * (1.0 if gamma is None else gamma)
    return y + (0.0 if beta is None else beta), moving_mean, moving_variance


# ------------------------------------------------------------------------------- recurrent


def lstm(x, kernel, recurrent_kernel, bias=None, act="tanh", recurrent_act="sigmoid", return_sequences=False):
    """x (batch, time, features); gates packed i, f, c, o along the last kernel axis.
    Returns (output, h, c) with zero initial state, as keras.layers.LSTM."""
    units = recurrent_kernel.shape[0]
    h, c, seq = np.zeros((x.shape[0], units)), np.zeros((x.shape[0], units)), []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + (0.0 if bias is None else bias)
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        c = activation(recurrent_act, zf) * c + activation(recurrent_act, zi) * activation(act, zc)
        h = activation(recurrent_act, zo) * activation(act, c)
        seq.append(h)
    out = np.stack(seq, axis=1) if return_sequences else h
    return out, h, c


def gru(x, kernel, recurrent_kernel, bias=None, act="tanh", recurrent_act="sigmoid", reset_after=True):
    """keras.layers.GRU's cell over time from a zero state: gates z, r, h packed along the last
    kernel axis; reset_after applies the reset gate after the recurrent matmul (bias (2, 3u):
    input and recurrent), else to the state before it (bias (3u,)). Returns every step's h."""
    u = recurrent_kernel.shape[0]
    if bias is None:
        b_in, b_rec = 0.0, 0.0
    else:
        b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, 0.0)
    h, seq = np.zeros((x.shape[0], u)), []
    for t in range(x.shape[1]):
        xz = x[:, t] @ kernel + b_in
        if reset_after:
            inner = h @ recurrent_kernel + b_rec
            z = activation(recurrent_act, xz[:, :u] + inner[:, :u])
            r = activation(recurrent_act, xz[:, u : 2 * u] + inner[:, u : 2 * u])
            hh = activation(act, xz[:, 2 * u :] + r * inner[:, 2 * u :])
        else:
            z = activation(recurrent_act, xz[:, :u] + h @ recurrent_kernel[:, :u])
            r = activation(recurrent_act, xz[:, u : 2 * u] + h @ recurrent_kernel[:, u : 2 * u])
            hh = activation(act, xz[:, 2 * u :] + (r * h) @ recurrent_kernel[:, 2 * u :])
        h = z * h + (1.0 - z) * hh
        seq.append(h)
    return np.stack(seq, axis=1)


def simple_rnn(x, kernel, recurrent_kernel, bias=None, act="tanh"):
    """keras.layers.SimpleRNN from a zero state: h = act(x_t W + b + h U). Every step's h."""
    h, seq = np.zeros((x.shape[0], recurrent_kernel.shape[0])), []
    for t in range(x.shape[1]):
        h = activation(act, x[:, t] @ kernel + (0.0 if bias is None else bias) + h @ recurrent_kernel)
        seq.append(h)
    return np.stack(seq, axis=1)

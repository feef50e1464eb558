"""Float64 NumPy implementations of the Keras 3 layers the registry uses.

The top half is plain math on arrays (what the unit tests check by hand); the bottom half,
LAYERS, maps a Keras class_name to an adapter that reads the layer config, insists on the
options it understands and calls the math. Every option not implemented here raises rather
than being ignored: a reference that quietly computes something else is worse than none.
"""

from __future__ import annotations

import functools
import itertools

# autograd's NumPy: plain float64 NumPy on arrays, and differentiable when the training path
# asks for gradients (keras_parity/run/training.py); hence no in-place writes below.
import autograd.numpy as np


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


ACTIVATIONS = {"linear": lambda x: x, "relu": relu, "sigmoid": sigmoid, "tanh": np.tanh, "softmax": softmax}


def activation(name, x):
    name = "linear" if name is None else name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedLayer(
            f"float64 reference has no implementation of activation {name!r}; "
            "add one to ACTIVATIONS in keras_parity/reference/layers.py"
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


def _padded(x, ksize, strides, padding, value):
    if padding == "valid":
        return x
    if padding == "same":
        return pad_spatial(x, [same_padding(n, k, s) for n, k, s in zip(x.shape[1:-1], ksize, strides)], value)
    raise UnsupportedLayer(f"float64 reference does not implement padding={padding!r}")


def _windows(x, ksize, strides):
    """One strided view per kernel offset o, holding x[p*stride + o] for every output p, in
    C order of the offsets (the order of kernel.reshape(-1, in, out)). Each is a cheap
    slice; together they are the im2col matrix without index arithmetic."""
    if not len(ksize) == len(strides) == x.ndim - 2:
        raise ValueError(f"window {tuple(ksize)} / strides {tuple(strides)} do not fit input {x.shape}")
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:-1], ksize, strides)]
    if min(out) < 1:
        raise ValueError(f"window {tuple(ksize)} does not fit input {x.shape[1:-1]} with 'valid' padding")
    for off in itertools.product(*(range(k) for k in ksize)):
        yield x[(slice(None), *(slice(o, o + (m - 1) * s + 1, s) for o, m, s in zip(off, out, strides)))]


def conv(x, kernel, bias=None, strides=None, padding="valid"):
    """N-d channels_last convolution (cross-correlation, as Keras), kernel (*k, in, out).

    im2col into one matrix, then one big matmul: BLAS does the float64 work, which is what
    makes ResNet50 run in seconds."""
    ksize = kernel.shape[:-2]
    strides = tuple(strides or (1,) * len(ksize))
    if x.shape[-1] != kernel.shape[-2] or x.ndim != kernel.ndim:
        raise ValueError(f"conv: kernel {kernel.shape} does not fit input {x.shape}")
    x = _padded(x, ksize, strides, padding, 0.0)
    cols = np.stack(list(_windows(x, ksize, strides)), axis=-2)
    y = cols.reshape(-1, cols.shape[-2] * cols.shape[-1]) @ kernel.reshape(-1, kernel.shape[-1])
    y = y.reshape(*cols.shape[:-2], kernel.shape[-1])
    return y if bias is None else y + bias


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


# ------------------------------------------------------------------- Keras class adapters
# adapter(cfg, p, args, training) -> array or list of arrays. cfg is the layer's "config",
# args the resolved positional call arguments, p(leaf) reads the weight "<layer>/<leaf>" and
# p.update(leaf, value) records a new value for it (BatchNormalization moving statistics).

LAYERS = {}


def _register(*class_names):
    def deco(fn):
        LAYERS.update(dict.fromkeys(class_names, fn))
        return fn

    return deco


def _require(cfg, **allowed):
    """Raise unless each cfg[key] (when present) is one of the allowed values."""
    for key, ok in allowed.items():
        if key in cfg and cfg[key] not in ok:
            raise UnsupportedLayer(
                f"float64 reference does not implement {key}={cfg[key]!r} (layer "
                f"'{cfg.get('name')}'); supported: {list(ok)}"
            )


def _one(args):
    if len(args) != 1 or isinstance(args[0], (list, tuple)):
        raise ValueError(f"expected one input tensor, got {len(args)} arguments")
    return args[0]


@_register("Dense")
def _dense(cfg, p, args, training):
    _require(cfg, quantization_config=(None,), lora_rank=(None, 0))
    bias = p("bias") if cfg.get("use_bias", True) else None
    return activation(cfg.get("activation"), dense(_one(args), p("kernel"), bias))


@_register("Conv1D", "Conv2D")
def _conv(cfg, p, args, training):
    _require(cfg, data_format=("channels_last",), groups=(1,))
    if any(d != 1 for d in cfg.get("dilation_rate", ())):
        raise UnsupportedLayer(
            f"float64 reference does not implement dilation_rate={cfg['dilation_rate']} (layer '{cfg.get('name')}')"
        )
    x, kernel = _one(args), p("kernel")
    bias = p("bias") if cfg.get("use_bias", True) else None
    y = conv(x, kernel, bias, strides=cfg.get("strides"), padding=cfg.get("padding", "valid"))
    return activation(cfg.get("activation"), y)


@_register("Activation")
def _activation(cfg, p, args, training):
    return activation(cfg["activation"], _one(args))


@_register("ReLU")
def _relu(cfg, p, args, training):
    return relu(
        _one(args),
        negative_slope=cfg.get("negative_slope", 0.0),
        max_value=cfg.get("max_value"),
        threshold=cfg.get("threshold", 0.0),
    )


@_register("Add")
def _add(cfg, p, args, training):
    xs = args[0] if len(args) == 1 else args
    out = xs[0]
    for x in xs[1:]:
        out = out + x  # left to right, as ops.add folds in Merge._merge_function
    return out


@_register("Flatten")
def _flatten(cfg, p, args, training):
    x = _one(args)
    if x.ndim > 2:
        _require(cfg, data_format=("channels_last", None))
    return x.reshape(x.shape[0], -1)


@_register("ZeroPadding2D")
def _zero_padding(cfg, p, args, training):
    _require(cfg, data_format=("channels_last",))
    return pad_spatial(_one(args), [tuple(pair) for pair in cfg["padding"]])


@_register("MaxPooling2D")
def _max_pool(cfg, p, args, training):
    _require(cfg, data_format=("channels_last",))
    return max_pool(_one(args), tuple(cfg["pool_size"]), cfg.get("strides"), cfg.get("padding", "valid"))


@_register("GlobalAveragePooling2D")
def _global_avg_pool(cfg, p, args, training):
    _require(cfg, data_format=("channels_last",))
    x = _one(args)
    if x.ndim != 4:
        raise ValueError(f"GlobalAveragePooling2D needs a 4-d input, got {x.shape}")
    return x.mean(axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))


@_register("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout")
def _dropout(cfg, p, args, training):
    if training:
        raise UnsupportedLayer(f"float64 reference cannot draw the random mask of '{cfg.get('name')}' in training")
    return _one(args)  # the identity at inference


@_register("LayerNormalization")
def _layer_norm(cfg, p, args, training):
    x = _one(args)
    axes = cfg.get("axis", -1)
    axes = sorted(a % x.ndim for a in (axes if isinstance(axes, (list, tuple)) else [axes]))
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=tuple(axes), keepdims=True)  # biased, as ops.moments
    eps = cfg.get("epsilon", 1e-3)
    rms = cfg.get("rms_scaling", False)
    # Keras's rms_scaling divides by the variance's root (not the mean square's): as it does.
    y = x / np.sqrt(var + eps) if rms else (x - mean) / np.sqrt(var + eps)
    if cfg.get("scale", True) or rms:
        y = y * p("gamma").reshape(shape)
    if cfg.get("center", True) and not rms:
        y = y + p("beta").reshape(shape)
    return y


@_register("BatchNormalization")
def _batch_norm(cfg, p, args, training):
    x = _one(args)
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis not in (-1, x.ndim - 1):
        raise UnsupportedLayer(
            f"float64 reference supports BatchNormalization only on the last "
            f"axis, layer '{cfg.get('name')}' has axis={cfg.get('axis')!r}"
        )
    _require(cfg, renorm=(False,))
    # Keras: `if training and self.trainable` - a frozen BN always uses moving statistics.
    train = bool(training and cfg.get("trainable", True))
    gamma = p("gamma") if cfg.get("scale", True) else None
    beta = p("beta") if cfg.get("center", True) else None
    y, mean, var = batch_norm(
        x,
        gamma,
        beta,
        p("moving_mean"),
        p("moving_variance"),
        cfg.get("epsilon", 1e-3),
        cfg.get("momentum", 0.99),
        train,
    )
    if train:
        p.update("moving_mean", mean)
        p.update("moving_variance", var)
    return y


@_register("LSTM")
def _lstm(cfg, p, args, training):
    _require(cfg, go_backwards=(False,), stateful=(False,))
    if training and (cfg.get("dropout", 0) > 0 or cfg.get("recurrent_dropout", 0) > 0):
        raise UnsupportedLayer(
            f"float64 reference cannot reproduce LSTM dropout masks (layer '{cfg.get('name')}', training=True)"
        )
    bias = p("lstm_cell/bias") if cfg.get("use_bias", True) else None
    out, h, c = lstm(
        _one(args),
        p("lstm_cell/kernel"),
        p("lstm_cell/recurrent_kernel"),
        bias,
        cfg.get("activation"),
        cfg.get("recurrent_activation"),
        bool(cfg.get("return_sequences", False)),
    )
    return [out, h, c] if cfg.get("return_state", False) else out


# Custom layers of this project (models/linear.py), dispatched by class_name.


@_register("ElementwiseScale")
def _elementwise_scale(cfg, p, args, training):
    return _one(args) * p("scale")


@_register("BranchSelect")
def _branch_select(cfg, p, args, training):
    x, flag = args[0] if len(args) == 1 else args
    # Read both branches' weights so neither is reported unused; only one is applied.
    branches = {b: (p(f"{b}/kernel"), p(f"{b}/bias")) for b in ("branch_a", "branch_b")}
    return dense(x, *branches["branch_a" if np.mean(flag) > 0.5 else "branch_b"])

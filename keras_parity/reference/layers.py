"""The Keras 3 layers the float64 reference knows: LAYERS (reference/registry.py) maps a Keras
class_name to an adapter that reads the layer config, insists on the options it understands
and calls the math of keras_parity/reference/ops.py. Importing this module fills LAYERS with
every adapter, those of the modules beside it included. Every option not implemented here
raises rather than being ignored: a reference that quietly computes something else is worse
than none.
"""

from __future__ import annotations

import autograd.numpy as np

# The weightless layers that combine, reshape and pool, the activation layers, the transposed
# convolutions, the attention layers, GRU, SimpleRNN and Bidirectional: importing their
# modules registers them.
from keras_parity.reference import attention, convolution, recurrent, reshaping  # noqa: F401
from keras_parity.reference.ops import (
    UnsupportedLayer,
    activation,
    batch_norm,
    conv,
    dense,
    depthwise_conv,
    lstm,
    max_pool,
    pad_spatial,
    relu,
)
from keras_parity.reference.registry import LAYERS, register, require, single_input

__all__ = ["LAYERS", "UnsupportedLayer"]


@register("Dense")
def _dense(cfg, p, args, training):
    require(cfg, quantization_config=(None,), lora_rank=(None, 0))
    bias = p("bias") if cfg.get("use_bias", True) else None
    return activation(cfg.get("activation"), dense(single_input(args), p("kernel"), bias))


@register("Conv1D", "Conv2D", "Conv3D")
def _conv(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    x, kernel = single_input(args), p("kernel")
    bias = p("bias") if cfg.get("use_bias", True) else None
    strides, padding, dilation = cfg.get("strides"), cfg.get("padding", "valid"), cfg.get("dilation_rate")
    y = conv(x, kernel, bias, strides=strides, padding=padding, groups=cfg.get("groups", 1), dilation=dilation)
    return activation(cfg.get("activation"), y)


@register("DepthwiseConv2D", "DepthwiseConv1D")
def _depthwise_conv(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    bias = p("bias") if cfg.get("use_bias", True) else None
    y = depthwise_conv(
        single_input(args), p("kernel"), bias, cfg.get("strides"), cfg.get("padding", "valid"), cfg.get("dilation_rate")
    )
    return activation(cfg.get("activation"), y)


@register("SeparableConv2D", "SeparableConv1D")
def _separable_conv(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    depthwise = depthwise_conv(
        single_input(args),
        p("depthwise_kernel"),
        None,
        cfg.get("strides"),
        cfg.get("padding", "valid"),
        cfg.get("dilation_rate"),
    )
    bias = p("bias") if cfg.get("use_bias", True) else None
    return activation(cfg.get("activation"), conv(depthwise, p("pointwise_kernel"), bias))


@register("Normalization")
def _normalization(cfg, p, args, training):
    # keras.layers.Normalization: (x - mean) / max(sqrt(variance), keras.config.epsilon()), the
    # statistics given in the config (EfficientNetV2, ConvNeXt) or adapted into its weights
    # ('count' only counts what adapt() saw).
    require(cfg, invert=(False,))
    x = single_input(args)
    axes = cfg.get("axis", -1)
    axes = [a % x.ndim for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    if cfg.get("mean") is not None:
        mean, variance = np.asarray(cfg["mean"], dtype=float), np.asarray(cfg["variance"], dtype=float)
    else:
        mean, variance, _ = p("mean"), p("variance"), p("count")
    mean, variance = (np.broadcast_to(v, shape) if np.size(v) == 1 else np.reshape(v, shape) for v in (mean, variance))
    return (x - mean) / np.maximum(np.sqrt(variance), 1e-7)


@register("Embedding")
def _embedding(cfg, p, args, training):
    # A mask (mask_zero) changes what later layers compute; none of them here reads one.
    require(cfg, mask_zero=(False,), quantization_config=(None,), lora_rank=(None, 0))
    ids = single_input(args)
    return p("embeddings")[np.asarray(ids).astype(int)]


@register("Activation")
def _activation(cfg, p, args, training):
    return activation(cfg["activation"], single_input(args))


@register("ReLU")
def _relu(cfg, p, args, training):
    return relu(
        single_input(args),
        negative_slope=cfg.get("negative_slope", 0.0),
        max_value=cfg.get("max_value"),
        threshold=cfg.get("threshold", 0.0),
    )


@register("Add")
def _add(cfg, p, args, training):
    xs = args[0] if len(args) == 1 else args
    out = xs[0]
    for x in xs[1:]:
        out = out + x  # left to right, as ops.add folds in Merge._merge_function
    return out


@register("Flatten")
def _flatten(cfg, p, args, training):
    x = single_input(args)
    if x.ndim > 2:
        require(cfg, data_format=("channels_last", None))
    return x.reshape(x.shape[0], -1)


@register("ZeroPadding2D", "ZeroPadding3D")
def _zero_padding(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    return pad_spatial(single_input(args), [tuple(pair) for pair in cfg["padding"]])


@register("MaxPooling2D")
def _max_pool(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    return max_pool(single_input(args), tuple(cfg["pool_size"]), cfg.get("strides"), cfg.get("padding", "valid"))


@register("GlobalAveragePooling2D")
def _global_avg_pool(cfg, p, args, training):
    require(cfg, data_format=("channels_last",))
    x = single_input(args)
    if x.ndim != 4:
        raise ValueError(f"GlobalAveragePooling2D needs a 4-d input, got {x.shape}")
    return x.mean(axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))


@register("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout")
def _dropout(cfg, p, args, training):
    if training:
        raise UnsupportedLayer(f"float64 reference cannot draw the random mask of '{cfg.get('name')}' in training")
    return single_input(args)  # the identity at inference


@register("LayerNormalization")
def _layer_norm(cfg, p, args, training):
    x = single_input(args)
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


@register("GroupNormalization")
def _group_norm(cfg, p, args, training):
    x = single_input(args)
    require(cfg, axis=(-1, x.ndim - 1))
    groups, channels = cfg.get("groups", 32), x.shape[-1]
    grouped = x.reshape(*x.shape[:-1], groups, channels // groups)
    axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)  # all but batch and group
    mean = grouped.mean(axis=axes, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=axes, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + cfg.get("epsilon", 1e-3))).reshape(x.shape)
    if cfg.get("scale", True):
        y = y * p("gamma")
    return y + p("beta") if cfg.get("center", True) else y


@register("PReLU")
def _prelu(cfg, p, args, training):
    x = single_input(args)  # alpha has size 1 along the shared axes: it broadcasts there
    return np.maximum(x, 0.0) + p("alpha") * np.minimum(x, 0.0)


@register("TimeDistributed")
def _time_distributed(cfg, p, args, training):
    """The inner layer on every time step at once (batch and time folded together), its weights
    under '<time_distributed>/<layer>/'."""
    x, inner = single_input(args), cfg["layer"]
    if inner["class_name"] not in LAYERS or inner.get("registered_name") not in (None, inner["class_name"]):
        raise UnsupportedLayer(f"float64 reference has no implementation of TimeDistributed({inner['class_name']})")
    name, folded = inner["config"]["name"], x.reshape(-1, *x.shape[2:])
    y = LAYERS[inner["class_name"]]({**inner["config"], "name": name}, p.child(name), [folded], training)
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


@register("BatchNormalization")
def _batch_norm(cfg, p, args, training):
    x = single_input(args)
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis not in (-1, x.ndim - 1):
        raise UnsupportedLayer(
            f"float64 reference supports BatchNormalization only on the last "
            f"axis, layer '{cfg.get('name')}' has axis={cfg.get('axis')!r}"
        )
    require(cfg, renorm=(False,))
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


@register("LSTM")
def _lstm(cfg, p, args, training):
    require(cfg, go_backwards=(False,), stateful=(False,))
    if training and (cfg.get("dropout", 0) > 0 or cfg.get("recurrent_dropout", 0) > 0):
        raise UnsupportedLayer(
            f"float64 reference cannot reproduce LSTM dropout masks (layer '{cfg.get('name')}', training=True)"
        )
    bias = p("lstm_cell/bias") if cfg.get("use_bias", True) else None
    out, h, c = lstm(
        single_input(args),
        p("lstm_cell/kernel"),
        p("lstm_cell/recurrent_kernel"),
        bias,
        cfg.get("activation"),
        cfg.get("recurrent_activation"),
        bool(cfg.get("return_sequences", False)),
    )
    return [out, h, c] if cfg.get("return_state", False) else out


# Custom layers of keras.applications (registered by Keras under their own names).


@register("LayerScale")
def _layer_scale(cfg, p, args, training):
    return single_input(args) * p.only()  # ConvNeXt: a per-channel scale, its variable named per process


@register("CustomScaleLayer")
def _custom_scale(cfg, p, args, training):
    x, branch = args[0] if len(args) == 1 else args
    return x + branch * cfg["scale"]  # InceptionResNetV2's residual scaling


# Custom layers of this project (models/linear.py), dispatched by class_name.


@register("ElementwiseScale")
def _elementwise_scale(cfg, p, args, training):
    return single_input(args) * p("scale")


@register("BranchSelect")
def _branch_select(cfg, p, args, training):
    x, flag = args[0] if len(args) == 1 else args
    # Read both branches' weights so neither is reported unused; only one is applied.
    branches = {b: (p(f"{b}/kernel"), p(f"{b}/bias")) for b in ("branch_a", "branch_b")}
    return dense(x, *branches["branch_a" if np.mean(flag) > 0.5 else "branch_b"])

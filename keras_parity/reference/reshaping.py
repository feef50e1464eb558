"""Keras layers without weights that combine, reshape, pad, crop, resample, pool or normalize
values, and the activation layers: their adapters on the float64 math (registered into LAYERS of
keras_parity/reference/registry.py, with the same rule: an option not implemented raises)."""

from __future__ import annotations

import functools

import autograd.numpy as np

from keras_parity.reference.ops import avg_pool, elu, leaky_relu, max_pool, pad_spatial, softmax
from keras_parity.reference.registry import register, require, single_input

# ----------------------------------------------------------------------------------- merging


def _inputs(args):
    return list(args[0] if len(args) == 1 else args)


@register("Subtract")
def _subtract(cfg, p, args, training):
    a, b = _inputs(args)
    return a - b


@register("Multiply")
def _multiply(cfg, p, args, training):
    return functools.reduce(lambda a, b: a * b, _inputs(args))  # left to right, as Merge folds


@register("Average")
def _average(cfg, p, args, training):
    xs = _inputs(args)
    return functools.reduce(lambda a, b: a + b, xs) / len(xs)


@register("Maximum")
def _maximum(cfg, p, args, training):
    return functools.reduce(np.maximum, _inputs(args))


@register("Minimum")
def _minimum(cfg, p, args, training):
    return functools.reduce(np.minimum, _inputs(args))


@register("Concatenate")
def _concatenate(cfg, p, args, training):
    return np.concatenate(_inputs(args), axis=cfg.get("axis", -1))


# ------------------------------------------------------------------------- reshaping, scaling


@register("Rescaling")
def _rescaling(cfg, p, args, training):
    scale, offset = np.asarray(cfg.get("scale", 1.0)), np.asarray(cfg.get("offset", 0.0))
    return single_input(args) * scale + offset


@register("Reshape")
def _reshape(cfg, p, args, training):
    x = single_input(args)
    return x.reshape(x.shape[0], *cfg["target_shape"])


@register("Permute")
def _permute(cfg, p, args, training):
    return np.transpose(single_input(args), (0, *cfg["dims"]))


@register("RepeatVector")
def _repeat_vector(cfg, p, args, training):
    x = single_input(args)
    return np.repeat(x[:, None, :], cfg["n"], axis=1)


@register("ZeroPadding1D")
def _zero_padding_1d(cfg, p, args, training):
    pad = cfg["padding"]
    return pad_spatial(single_input(args), [tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)])


@register("Cropping1D", "Cropping2D", "Cropping3D")
def _cropping(cfg, p, args, training):
    require(cfg, data_format=("channels_last", None))
    x, crops = single_input(args), cfg["cropping"]
    crops = [tuple(crops)] if not isinstance(crops[0], (list, tuple)) else [tuple(c) for c in crops]
    index = tuple(slice(a, n - b) for (a, b), n in zip(crops, x.shape[1:-1]))
    return x[(slice(None), *index)]


@register("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(cfg, p, args, training):
    require(cfg, data_format=("channels_last", None), interpolation=("nearest",))
    x, size = single_input(args), cfg["size"]
    for axis, times in enumerate([size] if isinstance(size, int) else size, start=1):
        x = np.repeat(x, times, axis=axis)
    return x


# ----------------------------------------------------------------------------------- pooling


def _pool(fn, cfg, args, ndim):
    require(cfg, data_format=("channels_last", None))
    x = single_input(args)
    if x.ndim != ndim + 2:
        raise ValueError(f"{ndim}-d pooling needs a {ndim + 2}-d input, got {x.shape}")
    size = cfg["pool_size"]
    size = (size,) * ndim if isinstance(size, int) else tuple(size)
    strides = cfg.get("strides") or size
    strides = (strides,) * ndim if isinstance(strides, int) else tuple(strides)
    return fn(x, size, strides, cfg.get("padding", "valid"))


@register("MaxPooling1D")
def _max_pool_1d(cfg, p, args, training):
    return _pool(max_pool, cfg, args, 1)


@register("AveragePooling1D")
def _avg_pool_1d(cfg, p, args, training):
    return _pool(avg_pool, cfg, args, 1)


@register("AveragePooling2D")
def _avg_pool_2d(cfg, p, args, training):
    return _pool(avg_pool, cfg, args, 2)


@register("MaxPooling3D")
def _max_pool_3d(cfg, p, args, training):
    return _pool(max_pool, cfg, args, 3)


@register("AveragePooling3D")
def _avg_pool_3d(cfg, p, args, training):
    return _pool(avg_pool, cfg, args, 3)


def _global(reduce, cfg, args):
    require(cfg, data_format=("channels_last", None))
    x = single_input(args)
    return reduce(x, axis=tuple(range(1, x.ndim - 1)), keepdims=bool(cfg.get("keepdims", False)))


@register("GlobalAveragePooling1D", "GlobalAveragePooling3D")
def _global_avg_pool_1d(cfg, p, args, training):
    return _global(np.mean, cfg, args)


@register("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")
def _global_max_pool(cfg, p, args, training):
    return _global(np.max, cfg, args)


# ------------------------------------------------------------------------------ normalizing


@register("UnitNormalization")
def _unit_normalization(cfg, p, args, training):
    """x / ||x|| over the axes; Keras bounds 1/||x|| by 1/epsilon with epsilon 1e-12 (fixed in
    its call), so a norm below 1e-12 scales by 1e12 and the zero vector stays zero."""
    x, axis = single_input(args), cfg.get("axis", -1)
    squares = np.sum(x**2, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=True)
    return x / np.sqrt(np.maximum(squares, 1e-24))


# ------------------------------------------------------------------------- activation layers


@register("Softmax")
def _softmax(cfg, p, args, training):
    axis = cfg.get("axis", -1)
    return softmax(single_input(args), axis=tuple(axis) if isinstance(axis, list) else axis)


@register("LeakyReLU")
def _leaky_relu(cfg, p, args, training):
    return leaky_relu(single_input(args), cfg.get("negative_slope", 0.3))  # the layer's default: 0.3


@register("ELU")
def _elu(cfg, p, args, training):
    return elu(single_input(args), cfg.get("alpha", 1.0))

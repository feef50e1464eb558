"""Transposed convolutions in float64 (Conv1DTranspose, Conv2DTranspose, Conv3DTranspose),
registered into LAYERS (keras_parity/reference/registry.py): the output size Keras computes from
padding and output_padding (keras/src/backend/common/backend_utils.py), the placement
TensorFlow's conv_transpose gives it, as the ordinary convolution of ops.py over the input with
zeros inserted between its pixels and the kernel flipped."""

from __future__ import annotations

import autograd.numpy as np

from keras_parity.reference.ops import UnsupportedLayer, activation, conv
from keras_parity.reference.registry import register, require, single_input


def _tuple(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value)


def transpose_size(size, k, stride, padding, output_padding=None):
    """One spatial axis's output size, as keras.ops.conv_transpose computes it."""
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return (size - 1) * stride + k + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + k % 2 + output_padding


def _dilate(x, axis, stride):
    """stride - 1 zeros between neighbours along axis: x[i] lands at i * stride."""
    if stride == 1:
        return x
    n = x.shape[axis]
    spread = np.stack([x] + [np.zeros_like(x)] * (stride - 1), axis=axis + 1)
    spread = spread.reshape(*x.shape[:axis], n * stride, *x.shape[axis + 1 :])
    return spread[(slice(None),) * axis + (slice(0, (n - 1) * stride + 1),)]


def conv_transpose(x, kernel, bias=None, strides=None, padding="valid", output_padding=None):
    """x (batch, *spatial, in), kernel (*k, out, in) as Keras stores it. Input pixel i and kernel
    tap t add x[i] W[t] to output pixel i*stride + t - before, where `before` is the padding
    TensorFlow's gradient-of-convolution places first: half of max((in - 1) * stride + k - out, 0)
    for 'same', none for 'valid'."""
    ksize = kernel.shape[:-2]
    n = len(ksize)
    strides = _tuple(strides or 1, n)
    extras = [None] * n if output_padding is None else _tuple(output_padding, n)
    pads = []
    for axis, (size, k, s, extra) in enumerate(zip(x.shape[1:-1], ksize, strides, extras), start=1):
        out = transpose_size(size, k, s, padding, extra)
        before = max((size - 1) * s + k - out, 0) // 2 if padding == "same" else 0
        x = _dilate(x, axis, s)
        left = k - 1 - before
        right = out + k - 1 - left - x.shape[axis]
        pads.append((left, max(right, 0)))
        if right < 0:  # output_padding that leaves input pixels' reach out of the output
            x = x[(slice(None),) * axis + (slice(0, x.shape[axis] + right),)]
    x = np.pad(x, [(0, 0), *pads, (0, 0)], mode="constant")
    flipped = kernel[(slice(None, None, -1),) * n]
    return conv(x, np.swapaxes(flipped, -1, -2), bias)


@register("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def _conv_transpose(cfg, p, args, training):
    require(cfg, data_format=("channels_last",), padding=("valid", "same"))
    if set(cfg.get("dilation_rate") or [1]) != {1}:
        # TensorFlow's CPU kernels refuse it too, so nothing here could be checked against Keras.
        raise UnsupportedLayer(
            f"float64 reference does not implement dilation_rate={cfg['dilation_rate']!r} "
            f"(layer '{cfg.get('name')}'); supported: 1"
        )
    bias = p("bias") if cfg.get("use_bias", True) else None
    y = conv_transpose(
        single_input(args),
        p("kernel"),
        bias,
        strides=cfg.get("strides"),
        padding=cfg.get("padding", "valid"),
        output_padding=cfg.get("output_padding"),
    )
    return activation(cfg.get("activation"), y)

"""The operator nodes of Keras functional graphs: `x + 3.0`, `ops.mean(x, axis=1)`, `x[:, :8]`
record a node of class keras.src.ops.* (Add, Mean, GetItem) with the operator's own arguments in
its config. OPS maps a class name to its float64 math; as for layers, an argument or operator
not implemented raises, naming it."""

from __future__ import annotations

import autograd.numpy as np

from keras_parity.reference import ops
from keras_parity.reference.ops import UnsupportedLayer

MODULES = ("keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.math", "keras.src.ops.core")
OPS = {}


def is_operator(layer: dict) -> bool:
    return layer.get("module") in MODULES


def _op(*class_names):
    def deco(fn):
        OPS.update(dict.fromkeys(class_names, fn))
        return fn

    return deco


def _binary(fn):
    return lambda cfg, args: fn(args[0], args[1])


def _unary(fn):
    return lambda cfg, args: fn(args[0])


OPS.update(
    {
        "Add": _binary(np.add),
        "Subtract": _binary(np.subtract),
        "Multiply": _binary(np.multiply),
        "TrueDivide": _binary(np.true_divide),
        "Divide": _binary(np.true_divide),
        "Power": _binary(np.power),
        "Maximum": _binary(np.maximum),
        "Minimum": _binary(np.minimum),
        "Matmul": _binary(np.matmul),
        "Negative": _unary(np.negative),
        "Absolute": _unary(np.abs),
        "Abs": _unary(np.abs),
        "Sqrt": _unary(np.sqrt),
        "Square": _unary(np.square),
        "Exp": _unary(np.exp),
        "Log": _unary(np.log),
        "Tanh": _unary(np.tanh),
        "Reciprocal": _unary(lambda x: 1.0 / x),
        # keras.src.ops.nn, by the activations' own math
        "Relu": _unary(ops.relu),
        "Relu6": _unary(ops.ACTIVATIONS["relu6"]),
        "Sigmoid": _unary(ops.sigmoid),
        "Silu": _unary(ops.ACTIVATIONS["silu"]),
        "Softplus": _unary(ops.softplus),
        "Softsign": _unary(ops.ACTIVATIONS["softsign"]),
        "HardSigmoid": _unary(ops.hard_sigmoid),
        "HardSilu": _unary(ops.ACTIVATIONS["hard_silu"]),
        "Selu": _unary(ops.ACTIVATIONS["selu"]),
        "Mish": _unary(ops.ACTIVATIONS["mish"]),
        "HardTanh": _unary(ops.ACTIVATIONS["hard_tanh"]),
        "TanhShrink": _unary(ops.ACTIVATIONS["tanh_shrink"]),
        "LogSigmoid": _unary(ops.ACTIVATIONS["log_sigmoid"]),
        "SparsePlus": _unary(ops.sparse_plus),
        "SparseSigmoid": _unary(ops.ACTIVATIONS["sparse_sigmoid"]),
    }
)


@_op("Celu")
def _celu(cfg, args):
    return ops.celu(args[0], cfg.get("alpha", 1.0))


@_op("Glu")
def _glu(cfg, args):
    return ops.glu(args[0], cfg.get("axis", -1))


@_op("Sparsemax")
def _sparsemax(cfg, args):
    return ops.sparsemax(args[0], cfg.get("axis", -1))


@_op("Squareplus")
def _squareplus(cfg, args):
    x = args[0]
    return (x + np.sqrt(x**2 + cfg.get("b", 4))) / 2.0


@_op("HardShrink")
def _hard_shrink(cfg, args):
    return np.where(np.abs(args[0]) > cfg.get("threshold", 0.5), args[0], 0.0)


@_op("SoftShrink")
def _soft_shrink(cfg, args):
    return ops.soft_shrink(args[0], cfg.get("threshold", 0.5))


@_op("Threshold")
def _threshold(cfg, args):
    return np.where(args[0] > cfg["threshold"], args[0], cfg["default_value"])


@_op("Gelu")
def _gelu(cfg, args):
    return ops.gelu(args[0], approximate=bool(cfg.get("approximate", True)))


@_op("Softmax")
def _softmax(cfg, args):
    return ops.softmax(args[0], axis=_axis(cfg.get("axis", -1)))


@_op("LogSoftmax")
def _log_softmax(cfg, args):
    return ops.log_softmax(args[0], axis=_axis(cfg.get("axis", -1)))


@_op("LeakyRelu")
def _leaky_relu(cfg, args):
    return ops.leaky_relu(args[0], cfg.get("negative_slope", 0.2))


@_op("Elu")
def _elu(cfg, args):
    return ops.elu(args[0], cfg.get("alpha", 1.0))


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _reduction(fn):
    return lambda cfg, args: fn(args[0], axis=_axis(cfg.get("axis")), keepdims=bool(cfg.get("keepdims", False)))


OPS.update(
    {"Mean": _reduction(np.mean), "Sum": _reduction(np.sum), "Max": _reduction(np.max), "Min": _reduction(np.min)}
)


@_op("Reshape")
def _reshape(cfg, args):
    return np.reshape(args[0], cfg["newshape"])


@_op("Transpose")
def _transpose(cfg, args):
    return np.transpose(args[0], cfg.get("axes"))


@_op("ExpandDims")
def _expand_dims(cfg, args):
    return np.expand_dims(args[0], cfg["axis"])


@_op("Squeeze")
def _squeeze(cfg, args):
    return np.squeeze(args[0], axis=_axis(cfg.get("axis")))


@_op("Concatenate")
def _concatenate(cfg, args):
    return np.concatenate(list(args[0]), axis=cfg.get("axis", 0))


@_op("Stack")
def _stack(cfg, args):
    return np.stack(list(args[0]), axis=cfg.get("axis", 0))


@_op("GetItem")
def _get_item(cfg, args):
    x, key = args
    return x[tuple(_index(k) for k in key) if isinstance(key, list) else _index(key)]


def _index(item):
    """A serialized index: a slice, an int, None (a new axis) or an Ellipsis."""
    if isinstance(item, dict) and item.get("class_name") == "__slice__":
        c = item["config"]
        return slice(c.get("start"), c.get("stop"), c.get("step"))
    if isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
        return Ellipsis
    if item is None or isinstance(item, int):
        return item
    raise UnsupportedLayer(f"float64 reference does not implement the index {item!r}")


def evaluate_operator(layer: dict, args: list):
    """One operator node's output from its resolved arguments."""
    fn = OPS.get(layer["class_name"])
    if fn is None:
        raise UnsupportedLayer(
            f"float64 reference has no implementation of operator '{layer['class_name']}' "
            f"({layer['module']}, node '{layer['name']}'); add one in keras_parity/reference/operators.py"
        )
    return fn(layer["config"], args)

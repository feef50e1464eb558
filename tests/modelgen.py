"""Random small Keras 3 models for tests: models nobody here wrote.

A graph is described by a plain JSON-able dict (`from_seed(seed)`, or Hypothesis draws through
`graphs()`, which shrink a failure to the smallest graph that still fails): a construction style
and 2 to 5 blocks, each block one entry of BLOCKS (a "block maker", keyed by name, which knows the
input ranks it accepts, draws its options and the output shape they give). `build(graph)` makes
the Keras model from the description alone, `set_weights(model, seed)` draws its weights with
NumPy, `save_and_load(graph, folder)` goes through a .keras file as users bring one, and
`describe(graph)` says in one line what it is.

Styles: a Sequential model, a functional chain, branches merged again, layers shared between two
inputs or called twice, a nested Sequential block and a nested functional block (a keras.Model
used as a layer, sometimes called twice), several inputs and several outputs (lists or dicts).
The blocks cover every layer type the float64 reference registers (keras_parity/reference/), the
wrappers (Bidirectional, TimeDistributed), operator nodes (`x * 0.5 + 0.25`, `x[..., :2]`), a
user's own layer registered with @keras.saving.register_keras_serializable (the reference refuses
it), and now and then an option the reference refuses (BatchNormalization(axis=1), bilinear
upsampling, Embedding(mask_zero=True), LSTM(go_backwards=True), ops.cumsum): those must come back
as one UnsupportedLayer line naming the layer.

`python tests/modelgen.py --table` prints the coverage of the fixed seed set (SEEDS): how many
graphs use each layer type and each construction style. `--show SEED` prints one graph.
Imports Keras and NumPy only (Hypothesis when `graphs()` is called), so a backend process can
import it as the custom-objects module of its models (`--custom-objects modelgen`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

L = keras.layers
# The fixed set the fast test runs and the coverage table counts: seeds 0-99, and the first seeds
# after them that bring a layer type of the reference, or an option it refuses, that none of
# those has (COVER_SEEDS = cover_seeds(); a test checks that the set covers every one, so a
# change of the generator that loses one says so).
COVER_SEEDS = (106, 157, 169, 264, 267, 333, 365, 438, 477, 787, 847)
SEEDS = (*range(100), *COVER_SEEDS)
BATCH = 2
MAX_DIM, MAX_SIZE = 8, 128  # no axis longer, no sample larger (the tests must stay fast)
UNSUPPORTED_P = 0.05  # how often a block with an option the reference refuses draws it

STYLES = ("functional", "sequential", "branches", "shared", "nested_sequential", "nested_functional", "multi_io")
# Activations by name (keras.activations). Not here: glu, which halves the axis while the layer's
# declared output shape does not (the operator block has it), and sparsemax, a Keras finding
# (tests/test_reference_layers3.py: keras-team/keras#23425), which departs by far more than rounding.
ACTIVATIONS = (
    "linear", "relu", "tanh", "sigmoid", "elu", "selu", "softplus", "softsign", "swish", "silu", "gelu",
    "relu6", "hard_sigmoid", "hard_silu", "mish", "log_softmax", "softmax", "leaky_relu", "celu",
    "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid", "sparse_plus",
    "sparse_sigmoid", "squareplus", "exponential",
)  # fmt: skip
MERGES = ("Add", "Concatenate", "Multiply", "Average", "Subtract", "Maximum", "Minimum", "+")


# ------------------------------------------------------------------------------------ draws


class SeedDraw:
    """Draws from NumPy with a seed (the fixed CI set)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 20261201])

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, options):
        options = list(options)
        return options[int(self.rng.integers(len(options)))]

    def flag(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)


class HypothesisDraw:
    """The same draws through Hypothesis: integers shrink to their lowest value, picks to the
    first option, flags to False, so a failing graph shrinks to the simplest that still fails."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def int(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))

    def pick(self, options):
        return self.draw(self.st.sampled_from(list(options)))

    def flag(self, p: float = 0.5) -> bool:
        return self.draw(self.st.sampled_from([False] * max(1, round(1 / p) - 1) + [True]))


# ------------------------------------------------------------------------------- the blocks


class Spec(NamedTuple):
    """A tensor as the generator tracks it: its shape without the batch axis, and for integer
    ids the vocabulary they are drawn below (an Embedding must come first)."""

    shape: tuple
    vocab: int | None = None

    @property
    def rank(self):
        return "ids" if self.vocab else len(self.shape)


def _fits(shape) -> bool:
    return all(1 <= n <= MAX_DIM for n in shape) and math.prod(shape) <= MAX_SIZE


def conv_len(n, k, s=1, padding="valid", d=1):
    if padding in ("same", "causal"):
        return -(-n // s)
    eff = (k - 1) * d + 1
    return (n - eff) // s + 1 if n >= eff else 0


def transpose_len(n, k, s, padding, output_padding=None):
    if padding == "valid":
        return (n - 1) * s + k + (max(k - s, 0) - k + s if output_padding is None else output_padding)
    return n * s if output_padding is None else (n - 1) * s + k % 2 + output_padding


class Block:
    """A block maker: `ranks` it accepts, `chain` (one tensor in, one out, a Layer a Sequential
    can hold), `draw` its options for an input (None where that input does not allow it; keep:
    the output shape must equal the input's), `out` the output it gives, `make` its callable
    (a Layer, or a function holding its layers, called as often as the graph calls it),
    `classes` the Keras layer types it uses."""

    ranks: tuple = (1, 2, 3, 4)
    chain = True

    def __init__(self, name):
        self.name = name

    def draw(self, d, s: Spec, keep: bool):
        return {}

    def out(self, b, s: Spec) -> Spec:
        return s

    def make(self, b, name):
        return getattr(L, self.name)(**b, name=name)

    def classes(self, b) -> list[str]:
        return [self.name]

    def unsupported(self, b) -> str | None:
        """The option the float64 reference refuses in this block, or None."""
        return None


BLOCKS: dict[str, Block] = {}


def block(name, **attrs):
    def deco(cls):
        inst = cls(name)
        for k, v in attrs.items():
            setattr(inst, k, v)
        BLOCKS[name] = inst
        return cls

    return deco


@block("Dense")
class _Dense(Block):
    def draw(self, d, s, keep):
        units = s.shape[-1] if keep else d.int(1, 6)
        return {"units": units, "activation": d.pick(ACTIVATIONS), "use_bias": not d.flag(0.2)}

    def out(self, b, s):
        return Spec((*s.shape[:-1], b["units"]))

    def make(self, b, name):
        return L.Dense(b["units"], activation=b["activation"], use_bias=b["use_bias"], name=name)


@block("Activation")
class _Activation(Block):
    def draw(self, d, s, keep):
        return {"activation": d.pick(ACTIVATIONS)}

    def make(self, b, name):
        return L.Activation(b["activation"], name=name)


@block("ReLU")
class _ReLU(Block):
    def draw(self, d, s, keep):
        b = {}
        if d.flag(0.4):
            b["max_value"] = d.pick([6.0, 0.5])
        if d.flag(0.4):
            b["negative_slope"] = d.pick([0.1, 0.25])
        if d.flag(0.3):
            b["threshold"] = d.pick([0.2, 0.5])
        return b

    def make(self, b, name):
        return L.ReLU(**b, name=name)


@block("LeakyReLU")
class _LeakyReLU(Block):
    def draw(self, d, s, keep):
        return {"negative_slope": d.pick([0.3, 0.125, 0.1])}

    def make(self, b, name):
        return L.LeakyReLU(negative_slope=b["negative_slope"], name=name)


@block("PReLU")
class _PReLU(Block):
    def draw(self, d, s, keep):
        return {"shared_axes": list(range(1, len(s.shape))) if len(s.shape) > 1 and d.flag() else None}

    def make(self, b, name):
        return L.PReLU(shared_axes=b["shared_axes"], name=name)


@block("ELU")
class _ELU(Block):
    def draw(self, d, s, keep):
        return {"alpha": d.pick([1.0, 0.5])}

    def make(self, b, name):
        return L.ELU(alpha=b["alpha"], name=name)


@block("Softmax")
class _Softmax(Block):
    def draw(self, d, s, keep):
        return {"axis": d.pick([-1, 1]) if len(s.shape) > 1 else -1}

    def make(self, b, name):
        return L.Softmax(axis=b["axis"], name=name)


@block("Identity")
class _Identity(Block):
    """The layers that are the identity at inference."""

    def draw(self, d, s, keep):
        kinds = ["Dropout", "GaussianNoise", "GaussianDropout"]
        kinds += {2: ["SpatialDropout1D"], 3: ["SpatialDropout2D"]}.get(len(s.shape), [])
        return {"layer": d.pick(kinds)}

    def make(self, b, name):
        kind = b["layer"]
        return L.GaussianNoise(0.1, name=name) if kind == "GaussianNoise" else getattr(L, kind)(0.25, name=name)

    def classes(self, b):
        return [b["layer"]]


@block("Rescaling")
class _Rescaling(Block):
    def draw(self, d, s, keep):
        return {"scale": d.pick([0.5, 2.0, 1 / 3]), "offset": d.pick([0.0, -0.25, 0.1])}

    def make(self, b, name):
        return L.Rescaling(b["scale"], offset=b["offset"], name=name)


@block("BatchNormalization")
class _BatchNormalization(Block):
    def draw(self, d, s, keep):
        b = {"epsilon": d.pick([1e-3, 0.1]), "center": not d.flag(0.2), "scale": not d.flag(0.2)}
        if len(s.shape) > 1 and d.flag(UNSUPPORTED_P):
            b["axis"] = 1
        return b

    def make(self, b, name):
        return L.BatchNormalization(**b, name=name)

    def unsupported(self, b):
        return "axis=1" if b.get("axis", -1) != -1 else None


@block("LayerNormalization")
class _LayerNormalization(Block):
    def draw(self, d, s, keep):
        b = {"epsilon": d.pick([1e-3, 1e-5]), "center": not d.flag(0.2), "scale": not d.flag(0.2)}
        if len(s.shape) > 1 and d.flag(0.3):
            b["axis"] = d.pick([list(range(1, len(s.shape) + 1)), 1])
        if d.flag(0.2):
            b["rms_scaling"] = True
        return b

    def make(self, b, name):
        return L.LayerNormalization(**b, name=name)


@block("GroupNormalization")
class _GroupNormalization(Block):
    def draw(self, d, s, keep):
        c = s.shape[-1]
        groups = [g for g in range(1, c + 1) if c % g == 0]
        if c < 2:
            return None
        b = {"groups": d.pick(groups), "epsilon": d.pick([1e-3, 1e-5]), "center": not d.flag(0.2)}
        if len(s.shape) > 1 and d.flag(UNSUPPORTED_P):
            b["axis"], b["groups"] = 1, 1
        return b

    def make(self, b, name):
        return L.GroupNormalization(**b, name=name)

    def unsupported(self, b):
        return "axis=1" if b.get("axis", -1) != -1 else None


@block("UnitNormalization")
class _UnitNormalization(Block):
    def make(self, b, name):
        return L.UnitNormalization(name=name)


@block("Normalization")
class _Normalization(Block):
    """Its statistics in its weights (as adapt() leaves them), or given in the config."""

    def draw(self, d, s, keep):
        if not d.flag(0.3):
            return {"stats": "weights"}
        c = range(s.shape[-1])
        return {"stats": "config", "mean": [0.1 * (i - 1) for i in c], "variance": [0.5 + 0.25 * i for i in c]}

    def make(self, b, name):
        if b["stats"] == "weights":
            return L.Normalization(axis=-1, name=name)
        return L.Normalization(axis=-1, mean=b["mean"], variance=b["variance"], name=name)


@block("ScaleShift")
class _Custom(Block):
    """A user's own layer (ScaleShift below): the reference must refuse it, naming it."""

    def make(self, b, name):
        return ScaleShift(name=name)

    def unsupported(self, b):
        return "a user's own layer class"


def _tuple(d, nd, lo, hi):
    return [d.int(lo, hi) for _ in range(nd)]


class _ConvBase(Block):
    nd = 1
    kind = "conv"  # conv, depthwise, separable, transpose

    def __init__(self, name):
        super().__init__(name)
        self.ranks = (self.nd + 1,)

    def draw(self, d, s, keep):
        c = s.shape[-1]
        pads = ["valid", "same"] + (["causal"] if self.nd == 1 and self.kind == "conv" else [])
        padding = "same" if keep else d.pick(pads)
        kernel = _tuple(d, self.nd, 1, 3)
        strides = [1] * self.nd if keep else _tuple(d, self.nd, 1, 2)
        if self.kind in ("depthwise", "separable"):
            strides = [strides[0]] * self.nd  # TensorFlow's depthwise kernels take equal strides only
        b = {"kernel_size": kernel, "strides": strides, "padding": padding}
        if self.kind != "transpose" and all(x == 1 for x in strides) and d.flag(0.25):
            b["dilation_rate"] = _tuple(d, self.nd, 1, 2)
        if self.kind in ("conv", "separable", "transpose"):
            b["filters"] = c if keep else d.int(1, 5)
        if self.kind in ("depthwise", "separable"):
            b["depth_multiplier"] = 1 if keep and self.kind == "depthwise" else d.int(1, 2)
        if self.kind == "conv" and c % 2 == 0 and b["filters"] % 2 == 0 and d.flag(0.25):
            b["groups"] = 2
        if self.kind == "transpose" and padding == "valid" and any(x > 1 for x in strides) and d.flag(0.3):
            b["output_padding"] = [d.int(0, st - 1) for st in strides]
        b["activation"] = d.pick(ACTIVATIONS)
        b["use_bias"] = not d.flag(0.2)
        out = self.out(b, s)
        return b if _fits(out.shape) and (not keep or out == s) else None

    def out(self, b, s):
        spatial, c = s.shape[:-1], s.shape[-1]
        dil = b.get("dilation_rate", [1] * self.nd)
        axes = zip(spatial, b["kernel_size"], b["strides"])
        if self.kind == "transpose":
            ops = b.get("output_padding") or [None] * self.nd
            sizes = [transpose_len(n, k, st, b["padding"], o) for (n, k, st), o in zip(axes, ops)]
        else:
            sizes = [conv_len(n, k, st, b["padding"], dd) for (n, k, st), dd in zip(axes, dil)]
        chans = c * b["depth_multiplier"] if self.kind == "depthwise" else b["filters"]
        return Spec((*sizes, chans))

    def make(self, b, name):
        kw = {k: v for k, v in b.items()}
        return getattr(L, self.name)(**kw, name=name)


_CONVS = [("conv", "Conv{}D", 3), ("transpose", "Conv{}DTranspose", 3)]
_CONVS += [("depthwise", "DepthwiseConv{}D", 2), ("separable", "SeparableConv{}D", 2)]
for _kind, _cls, _dims in _CONVS:
    for _nd in range(1, _dims + 1):
        _name = _cls.format(_nd)
        block(_name)(type(f"_{_name}", (_ConvBase,), {"nd": _nd, "kind": _kind}))


class _Pool(Block):
    nd = 1
    op = "Max"

    def __init__(self, name):
        super().__init__(name)
        self.ranks = (self.nd + 1,)

    def draw(self, d, s, keep):
        if keep:
            b = {"pool_size": _tuple(d, self.nd, 1, 3), "strides": [1] * self.nd, "padding": "same"}
        else:
            b = {"pool_size": _tuple(d, self.nd, 1, 3), "padding": d.pick(["valid", "same"])}
            if d.flag(0.4):
                b["strides"] = _tuple(d, self.nd, 1, 2)
        out = self.out(b, s)
        return b if _fits(out.shape) and (not keep or out == s) else None

    def out(self, b, s):
        strides = b.get("strides") or b["pool_size"]
        sizes = [conv_len(n, k, st, b["padding"]) for n, k, st in zip(s.shape[:-1], b["pool_size"], strides)]
        return Spec((*sizes, s.shape[-1]))

    def make(self, b, name):
        return getattr(L, self.name)(**b, name=name)


for _nd in (1, 2, 3):
    for _op in ("Max", "Average"):
        _name = f"{_op}Pooling{_nd}D"
        block(_name)(type(f"_{_name}", (_Pool,), {"nd": _nd, "op": _op}))


class _GlobalPool(Block):
    nd = 1

    def __init__(self, name):
        super().__init__(name)
        self.ranks = (self.nd + 1,)

    def draw(self, d, s, keep):
        return None if keep else {"keepdims": d.flag(0.3)}

    def out(self, b, s):
        return Spec(((1,) * self.nd if b["keepdims"] else ()) + (s.shape[-1],))

    def make(self, b, name):
        return getattr(L, self.name)(keepdims=b["keepdims"], name=name)


for _nd in (1, 2, 3):
    for _op in ("Max", "Average"):
        _name = f"Global{_op}Pooling{_nd}D"
        block(_name)(type(f"_{_name}", (_GlobalPool,), {"nd": _nd}))


class _Resize(Block):
    """ZeroPadding, Cropping and UpSampling in 1, 2 and 3 dimensions."""

    nd = 1
    op = "ZeroPadding"

    def __init__(self, name):
        super().__init__(name)
        self.ranks = (self.nd + 1,)

    def draw(self, d, s, keep):
        if keep:
            return None
        if self.op == "UpSampling":
            b = {"size": _tuple(d, self.nd, 1, 2)}
            if self.nd == 2 and d.flag(UNSUPPORTED_P):
                b["interpolation"] = "bilinear"
        else:
            b = {"amount": [_tuple(d, 2, 0, 1) for _ in range(self.nd)]}
        out = self.out(b, s)
        return b if _fits(out.shape) else None

    def out(self, b, s):
        spatial = s.shape[:-1]
        if self.op == "UpSampling":
            sizes = [n * k for n, k in zip(spatial, b["size"])]
        else:
            sign = 1 if self.op == "ZeroPadding" else -1
            sizes = [n + sign * (a + z) for n, (a, z) in zip(spatial, b["amount"])]
        return Spec((*sizes, s.shape[-1]))

    def make(self, b, name):
        cls = getattr(L, self.name)
        if self.op == "UpSampling":
            size = b["size"][0] if self.nd == 1 else tuple(b["size"])
            kw = {"interpolation": b["interpolation"]} if "interpolation" in b else {}
            return cls(size, name=name, **kw)
        amount = tuple(b["amount"][0]) if self.nd == 1 else tuple(tuple(p) for p in b["amount"])
        return cls(amount, name=name)

    def unsupported(self, b):
        return "interpolation='bilinear'" if b.get("interpolation", "nearest") != "nearest" else None


for _nd in (1, 2, 3):
    for _op in ("ZeroPadding", "Cropping", "UpSampling"):
        _name = f"{_op}{_nd}D"
        block(_name)(type(f"_{_name}", (_Resize,), {"nd": _nd, "op": _op}))


@block("Flatten", ranks=(2, 3, 4))
class _Flatten(Block):
    def draw(self, d, s, keep):
        return None if keep else {"data_format": "channels_first"} if d.flag(UNSUPPORTED_P) else {}

    def out(self, b, s):
        return Spec((math.prod(s.shape),))

    def unsupported(self, b):
        return "data_format='channels_first'" if b.get("data_format") == "channels_first" else None


@block("Reshape", ranks=(1, 2, 3, 4))
class _Reshape(Block):
    """To a rank above or below: (n,) -> (n, 1) or (a, n/a); (t, f) -> (t, f, 1); (h, w, c) -> (h*w, c)."""

    def draw(self, d, s, keep):
        if keep:
            return None
        shape = s.shape
        options = [[*shape, 1]] if len(shape) < 4 else []
        if len(shape) >= 2:
            options.append([math.prod(shape[:-1]), shape[-1]])
        if len(shape) == 1:
            options += [[a, shape[0] // a] for a in (2, 3) if shape[0] % a == 0 and shape[0] > a]
        options = [o for o in options if _fits(o)]
        if not options:
            return None
        target = list(d.pick(options))
        if d.flag(0.3):
            target[d.int(0, len(target) - 1)] = -1  # the one axis Keras infers
        return {"target_shape": target}

    def out(self, b, s):
        known = math.prod(n for n in b["target_shape"] if n != -1)
        return Spec(tuple(math.prod(s.shape) // known if n == -1 else n for n in b["target_shape"]))

    def make(self, b, name):
        return L.Reshape(tuple(b["target_shape"]), name=name)


@block("Permute", ranks=(2, 3, 4))
class _Permute(Block):
    def draw(self, d, s, keep):
        if keep:
            return None
        n = len(s.shape)
        options = {2: [[2, 1]], 3: [[2, 1, 3], [1, 3, 2], [3, 1, 2]], 4: [[4, 2, 3, 1], [1, 3, 2, 4]]}[n]
        return {"dims": d.pick(options)}

    def out(self, b, s):
        return Spec(tuple(s.shape[i - 1] for i in b["dims"]))

    def make(self, b, name):
        return L.Permute(tuple(b["dims"]), name=name)


@block("RepeatVector", ranks=(1,))
class _RepeatVector(Block):
    def draw(self, d, s, keep):
        return None if keep or s.shape[0] * 2 > MAX_SIZE else {"n": d.int(2, 4)}

    def out(self, b, s):
        return Spec((b["n"], s.shape[0]))

    def make(self, b, name):
        return L.RepeatVector(b["n"], name=name)


@block("Embedding", ranks=("ids",))
class _Embedding(Block):
    def draw(self, d, s, keep):
        b = {"input_dim": s.vocab, "output_dim": d.int(2, 5)}
        if d.flag(UNSUPPORTED_P):
            b["mask_zero"] = True
        return b

    def out(self, b, s):
        return Spec((*s.shape, b["output_dim"]))

    def make(self, b, name):
        return L.Embedding(**b, name=name)

    def unsupported(self, b):
        return "mask_zero=True" if b.get("mask_zero") else None


RNNS = ("LSTM", "GRU", "SimpleRNN")


def _rnn_options(d, s, keep, name):
    b = {"units": s.shape[-1] if keep else d.int(1, 5), "return_sequences": keep or d.flag()}
    if d.flag(0.2):
        b["activation"] = d.pick(["relu", "sigmoid"])
    if d.flag(0.2):
        b["use_bias"] = False
    if name == "GRU" and d.flag(0.3):
        b["reset_after"] = False
    return b


def _rnn_out(b, s):
    return Spec((s.shape[0], b["units"]) if b["return_sequences"] else (b["units"],))


class _Recurrent(Block):
    ranks = (2,)

    def draw(self, d, s, keep):
        b = _rnn_options(d, s, keep, self.name)
        if d.flag(UNSUPPORTED_P if self.name == "LSTM" else 0.2):
            b["go_backwards"] = True
        return b

    def out(self, b, s):
        return _rnn_out(b, s)

    def make(self, b, name):
        return getattr(L, self.name)(**b, name=name)

    def unsupported(self, b):
        return "go_backwards=True" if self.name == "LSTM" and b.get("go_backwards") else None


for _name in RNNS:
    block(_name)(type(f"_{_name}", (_Recurrent,), {}))


@block("Bidirectional", ranks=(2,))
class _Bidirectional(Block):
    def draw(self, d, s, keep):
        mode = d.pick(["sum", "mul", "ave"] if keep else ["concat", "sum", "mul", "ave"])
        b = {"layer": d.pick(RNNS), "merge_mode": mode, **_rnn_options(d, s, keep, "")}
        if d.flag(0.3):
            b["backward_layer"] = True  # its own backward layer (go_backwards=True), not a copy
        return b

    def out(self, b, s):
        o = _rnn_out(b, s)
        return Spec((*o.shape[:-1], 2 * b["units"])) if b["merge_mode"] == "concat" else o

    def make(self, b, name):
        kw = {k: v for k, v in b.items() if k not in ("layer", "merge_mode", "backward_layer")}
        cls = getattr(L, b["layer"])
        inner = cls(**kw, name=None if name is None else f"{b['layer'].lower()}_of_{name}")
        back = None
        if b.get("backward_layer"):
            back = cls(**kw, go_backwards=True, name=None if name is None else f"back_{b['layer'].lower()}_of_{name}")
        return L.Bidirectional(inner, merge_mode=b["merge_mode"], backward_layer=back, name=name)

    def classes(self, b):
        return ["Bidirectional", b["layer"]]


@block("TimeDistributed", ranks=(2, 3, 4))
class _TimeDistributed(Block):
    """Any one-tensor block on every step of a sequence, every row of an image, every frame of
    a volume (a TimeDistributed or a Bidirectional too): the inner block under "inner"."""

    def draw(self, d, s, keep):
        inner, out = draw_block(d, Spec(s.shape[1:]), chain_only=True, keep=keep)
        return {"inner": inner} if _fits((s.shape[0], *out.shape)) else None

    def out(self, b, s):
        inner = b["inner"]
        return Spec((s.shape[0], *BLOCKS[inner["block"]].out(_params(inner), Spec(s.shape[1:])).shape))

    def make(self, b, name):
        inner = b["inner"]
        layer = BLOCKS[inner["block"]].make(_params(inner), None if name is None else f"{name}_inner")
        return L.TimeDistributed(layer, name=name)

    def classes(self, b):
        return ["TimeDistributed", *BLOCKS[b["inner"]["block"]].classes(_params(b["inner"]))]


@block("RNNState", ranks=(2,), chain=False)
class _RNNState(Block):
    """A recurrent layer with return_state=True: its output and states concatenated (the
    layer's outputs 0, 1 and 2 all read). GRU and SimpleRNN states the reference refuses."""

    def draw(self, d, s, keep):
        if keep:
            return None
        return {"layer": d.pick(RNNS), "units": d.int(1, 4)}

    def out(self, b, s):
        return Spec(((3 if b["layer"] == "LSTM" else 2) * b["units"],))

    def make(self, b, name):
        layer = getattr(L, b["layer"])(b["units"], return_state=True, name=name)
        return lambda x: keras.ops.concatenate(layer(x), axis=-1)

    def classes(self, b):
        return [b["layer"], "op:concatenate"]

    def unsupported(self, b):
        return None if b["layer"] == "LSTM" else "return_state=True"


@block("MultiHeadAttention", ranks=(2,), chain=False)
class _MultiHeadAttention(Block):
    def draw(self, d, s, keep):
        b = {"num_heads": d.int(1, 2), "key_dim": d.pick([4, 2, 3]), "use_causal_mask": d.flag(0.3)}
        if d.flag(0.3):
            b["value_dim"] = d.int(1, 3)
        if d.flag(0.2):
            b["use_bias"] = False
        return b

    def make(self, b, name):
        kw = {k: v for k, v in b.items() if k != "use_causal_mask"}
        layer = L.MultiHeadAttention(**kw, name=name)
        return lambda x: layer(x, x, use_causal_mask=b["use_causal_mask"])


@block("Attention", ranks=(2,), chain=False)
class _Attention(Block):
    def draw(self, d, s, keep):
        return {"use_scale": d.flag(0.4), "score_mode": d.pick(["dot", "concat"]), "use_causal_mask": d.flag(0.3)}

    def make(self, b, name):
        layer = L.Attention(use_scale=b["use_scale"], score_mode=b["score_mode"], name=name)
        return lambda x: layer([x, x], use_causal_mask=b["use_causal_mask"])


@block("Operator", chain=False)
class _Operator(Block):
    """Operator nodes a functional graph records: `x * 0.5 + 0.25`, ops.tanh, a gate, ops.gelu,
    `x[..., :k]`, ops.mean with keepdims, ops.glu, and ops.cumsum (not implemented: refused)."""

    def draw(self, d, s, keep):
        ops = ["affine", "tanh", "gate", "gelu", "square"]
        if not keep:
            ops += ["slice", "mean"] + (["glu"] if s.shape[-1] % 2 == 0 else [])
        if d.flag(UNSUPPORTED_P):
            return {"op": "cumsum"}
        b = {"op": d.pick(ops)}
        if b["op"] == "affine":
            b["scale"], b["shift"] = d.pick([0.5, 3.0, 0.1]), d.pick([0.25, -1.0])
        if b["op"] == "slice":
            if s.shape[-1] < 2:
                return None
            b["stop"] = d.int(1, s.shape[-1] - 1)
        return b

    def out(self, b, s):
        if b["op"] == "slice":
            return Spec((*s.shape[:-1], b["stop"]))
        if b["op"] == "mean":
            return Spec((*s.shape[:-1], 1))
        if b["op"] == "glu":
            return Spec((*s.shape[:-1], s.shape[-1] // 2))
        return s

    def make(self, b, name):
        K, op = keras.ops, b["op"]
        return {
            "affine": lambda x: x * b.get("scale") + b.get("shift"),
            "tanh": K.tanh,
            "gate": lambda x: x * K.sigmoid(x),
            "gelu": lambda x: K.gelu(x, approximate=True),
            "square": lambda x: x + 0.5 * K.square(x),
            "slice": lambda x: x[..., : b.get("stop")],
            "mean": lambda x: K.mean(x, axis=-1, keepdims=True),
            "glu": K.glu,
            "cumsum": lambda x: K.cumsum(x, axis=-1),
        }[op]

    def classes(self, b):
        return [f"op:{b['op']}"]

    def unsupported(self, b):
        return "operator Cumsum" if b["op"] == "cumsum" else None


@keras.saving.register_keras_serializable(package="modelgen")
class ScaleShift(keras.layers.Layer):
    """A user's own layer: x * gain + tanh(x), one weight per feature."""

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain + keras.ops.tanh(x)

    def compute_output_shape(self, input_shape):  # TimeDistributed asks for it
        return input_shape


# -------------------------------------------------------------------------- drawing graphs


# Blocks that take any rank and keep it, and blocks that drop to one feature axis; the rest are
# made for their rank (convolutions, pooling, recurrent layers, ...) and are drawn more often, or
# most graphs would flatten early and run on vectors.
ANY_RANK = {
    "Dense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Identity", "Rescaling",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Normalization", "ScaleShift", "Operator",
}  # fmt: skip
TO_VECTOR = {"Flatten", *(f"Global{op}Pooling{n}D" for op in ("Max", "Average") for n in (1, 2, 3))}
GROUPS = ["rank"] * 6 + ["any"] * 3 + ["vector"]


def _candidates(s: Spec, chain_only: bool):
    return [n for n, m in BLOCKS.items() if s.rank in m.ranks and (m.chain or not chain_only)]


def _group(name):
    return "any" if name in ANY_RANK else "vector" if name in TO_VECTOR else "rank"


def draw_block(d, s: Spec, *, chain_only=False, keep=False):
    """One block for input `s`: (block dict, its output). A group first (GROUPS), then a block
    of it; a block whose options this input does not allow gives way to another."""
    names = _candidates(s, chain_only)
    group = d.pick(GROUPS) if s.rank != 1 else None  # vectors: every block alike
    for pool in ([n for n in names if _group(n) == group], names):
        while pool:
            name = d.pick(pool)
            b = BLOCKS[name].draw(d, s, keep)
            if b is not None:
                out = BLOCKS[name].out(b, s)
                if _fits(out.shape) and (not keep or out == s):
                    return {"block": name, **b}, out
            pool = [n for n in pool if n != name]
            names = [n for n in names if n != name]
    raise AssertionError(f"no block takes {s}")  # Dense and Activation take every float input


def draw_chain(d, s: Spec, n: int, **kw):
    blocks = []
    for _ in range(n):
        b, s = draw_block(d, s, **kw)
        blocks.append(b)
    return blocks, s


def out_of(blocks, s: Spec) -> Spec:
    for b in blocks:
        s = BLOCKS[b["block"]].out(_params(b), s)
    return s


def _params(b):
    return {k: v for k, v in b.items() if k != "block"}


def draw_input(d, kinds=("vec", "seq", "img", "vol", "ids")) -> Spec:
    kind = d.pick(kinds)
    if kind == "vec":
        return Spec((d.int(2, 6),))
    if kind == "seq":
        return Spec((d.int(3, 6), d.int(2, 5)))
    if kind == "img":
        return Spec((d.int(3, 6), d.int(3, 6), d.int(1, 3)))
    if kind == "vol":
        return Spec((d.int(2, 4), d.int(2, 4), d.int(2, 4), d.int(1, 2)))
    return Spec((d.int(3, 6),), vocab=d.int(4, 9))


def _split(d, n, parts):
    """n blocks over the named parts, each part at least its minimum: {part: count}."""
    counts = {p: lo for p, lo in parts.items()}
    for _ in range(n - sum(counts.values())):
        counts[d.pick(list(parts))] += 1
    return counts


def _first(d, s, n, **kw):
    """A chain from an input: an Embedding first on integer ids."""
    if s.vocab:
        b = _Embedding("Embedding").draw(d, s, False)
        first, s = {"block": "Embedding", **b}, BLOCKS["Embedding"].out(b, s)
        rest, s = draw_chain(d, s, max(n - 1, 0), **kw)
        return [first, *rest], s
    return draw_chain(d, s, n, **kw)


def merge_of(d, shapes: list[Spec]) -> dict:
    """How tensors of these shapes merge: the drawn kind when their shapes agree, else a
    concatenation (along the last axis where only that differs, else of their flattenings).
    Two sequences: now and then attention of the first over the second (cross-attention)."""
    if len(shapes) == 2 and all(len(s.shape) == 2 for s in shapes) and d.flag(0.25):
        kinds = ["MultiHeadAttention"] + (["Attention"] if shapes[0].shape[-1] == shapes[1].shape[-1] else [])
        m = {"merge": d.pick(kinds)}
        if m["merge"] == "MultiHeadAttention":  # key_dim 4: its scale 1/2 is exact in float32
            m.update(num_heads=d.int(1, 2), key_dim=4, keywords=d.flag())
        return m
    if all(s == shapes[0] for s in shapes):
        kind = d.pick(MERGES if len(shapes) == 2 else [m for m in MERGES if m not in ("Subtract", "+")])
        m = {"merge": kind}
        if kind == "Concatenate" and len(shapes[0].shape) > 1 and d.flag(0.3):
            m["axis"] = 1
        return m
    if len({len(s.shape) for s in shapes}) == 1 and len({s.shape[:-1] for s in shapes}) == 1:
        return {"merge": "Concatenate"}
    return {"merge": "Concatenate", "flatten": True}


def merged(m: dict, shapes: list[Spec]) -> Spec:
    if m.get("flatten"):
        return Spec((sum(math.prod(s.shape) for s in shapes),))
    if m["merge"] != "Concatenate":
        return shapes[0]  # the attention merges: the query's shape
    axis = m.get("axis", -1)
    axis = axis - 1 if axis > 0 else axis % len(shapes[0].shape)  # Keras counts the batch axis
    out = list(shapes[0].shape)
    out[axis] = sum(s.shape[axis] for s in shapes)
    return Spec(tuple(out))


def draw_graph(d, seed: int = 0) -> dict:
    """A graph description from draws `d` (SeedDraw or HypothesisDraw)."""
    style = d.pick(STYLES)
    n = d.int(2, 5)
    g = {"seed": seed, "style": style, "naming": d.pick(["level", "auto"])}
    if style == "sequential":
        s = draw_input(d, ("vec", "seq", "img", "vol", "ids"))
        g["inputs"] = [_input(s)]
        g["blocks"], _ = _first(d, s, n, chain_only=True)
    elif style == "functional":
        s = draw_input(d)
        g["inputs"] = [_input(s)]
        g["blocks"], _ = _first(d, s, n)
    elif style == "branches":
        s = draw_input(d)
        g["inputs"] = [_input(s)]
        c = _split(d, n, {"trunk": 1 if s.vocab else 0, "left": 1, "right": 0, "tail": 0})
        g["trunk"], s = _first(d, s, c["trunk"])
        keep = d.flag(0.6)
        g["left"], a = draw_chain(d, s, c["left"], keep=keep)
        g["right"], b = draw_chain(d, s, c["right"], keep=keep)
        g["merge"] = merge_of(d, [a, b])
        g["tail"], _ = draw_chain(d, merged(g["merge"], [a, b]), c["tail"])
    elif style == "shared":
        s = draw_input(d, ("vec", "seq", "img", "ids"))
        g["twice"] = not s.vocab and d.flag(0.3)
        g["inputs"] = [_input(s)] * (1 if g["twice"] else 2)
        c = _split(d, n, {"shared": 1 + bool(s.vocab), "tail": 0})
        g["shared"], a = _first(d, s, c["shared"], keep=g["twice"])
        if not g["twice"]:
            g["merge"] = merge_of(d, [a, a])
            a = merged(g["merge"], [a, a])
        g["tail"], _ = draw_chain(d, a, c["tail"])
    elif style in ("nested_sequential", "nested_functional"):
        s = draw_input(d)
        sequential = style == "nested_sequential"
        c = _split(d, n, {"trunk": 1 if s.vocab else 0, "inner": 1, "tail": 0})
        g["inputs"] = [_input(s)]
        g["outer"] = "sequential" if sequential and d.flag(0.3) else "functional"
        g["trunk"], s = _first(d, s, c["trunk"], chain_only=g["outer"] == "sequential")
        g["twice"] = g["outer"] == "functional" and d.flag(0.25)
        g["inner_input"] = not sequential or d.flag()
        g["inner"], o = draw_chain(d, s, c["inner"], chain_only=sequential, keep=g["twice"])
        # the first `deep` inner blocks in a Sequential of their own: a model two levels down
        chained = next((i for i, b in enumerate(g["inner"]) if not BLOCKS[b["block"]].chain), len(g["inner"]))
        g["deep"] = d.int(1, chained) if chained and d.flag(0.3) else 0
        cuts = list(range(max(g["deep"], 1), len(g["inner"])))
        if not sequential and not g["twice"] and cuts and d.flag(0.3):
            # a second output of the nested model: its tensor after `cut` blocks
            cut = d.pick(cuts)
            mid = out_of(g["inner"][:cut], s)
            g["inner_merge"] = {"cut": cut, **merge_of(d, [o, mid])}
            o = merged(g["inner_merge"], [o, mid])
        g["tail"], _ = draw_chain(d, o, c["tail"], chain_only=g["outer"] == "sequential")
    else:  # multi_io
        k = d.int(2, 3)
        specs = [draw_input(d) for _ in range(k)]
        g["inputs"] = [_input(s) for s in specs]
        firsts = {f"in{i}": 1 if s.vocab else 0 for i, s in enumerate(specs)}
        c = _split(d, max(n, k), {**firsts, "head0": 1, "head1": 0})
        g["per_input"], outs = [], []
        for i, s in enumerate(specs):
            blocks, o = _first(d, s, c[f"in{i}"])
            g["per_input"].append(blocks)
            outs.append(o)
        g["merge"] = merge_of(d, outs)
        g["nested_merge"] = d.flag(0.3)  # the merge inside a model of several inputs
        m = merged(g["merge"], outs)
        g["heads"] = [draw_chain(d, m, c["head0"])[0], draw_chain(d, m, c["head1"])[0]]
        # a third output: the first input's own branch, an inner tensor of the graph
        g["branch_output"] = bool(g["per_input"][0]) and d.flag(0.3)
        g["dict_io"] = d.flag(0.3)
    return g


def _input(s: Spec) -> dict:
    return {"shape": list(s.shape), **({"vocab": s.vocab} if s.vocab else {})}


def from_seed(seed: int) -> dict:
    return draw_graph(SeedDraw(seed), seed)


def graphs():
    """The Hypothesis strategy of graph descriptions."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw):
        return draw_graph(HypothesisDraw(draw), seed=draw(st.integers(0, 2**16)))

    return strategy()


# --------------------------------------------------------------------------------- reading


def parts(g: dict) -> list[list[dict]]:
    """Every block list of a graph."""
    keys = ("blocks", "trunk", "left", "right", "shared", "inner", "tail")
    return [g[k] for k in keys if k in g] + g.get("per_input", []) + g.get("heads", [])


def blocks_of(g: dict) -> list[dict]:
    return [b for p in parts(g) for b in p]


def layer_types(g: dict) -> Counter:
    """The Keras layer types (and operators, 'op:<name>') a graph uses, with the merges and the
    models it nests."""
    out = Counter(c for b in blocks_of(g) for c in BLOCKS[b["block"]].classes(_params(b)))
    for m in (g.get("merge"), g.get("inner_merge")):
        if m:
            out["op:add" if m["merge"] == "+" else m["merge"]] += 1
            if m.get("flatten"):
                out["Flatten"] += 1
    return out


def styles_of(g: dict) -> list[str]:
    """Every construction style a graph shows."""
    tags = [g["style"]]
    types = layer_types(g)
    if g["style"] in ("nested_sequential", "nested_functional") and g["outer"] == "sequential":
        tags.append("Sequential in Sequential")
    if g.get("deep"):
        tags.append("a model nested two deep")
    if "inner_merge" in g:
        tags.append("a nested model of two outputs")
    if g.get("nested_merge"):
        tags.append("a nested model of several inputs")
    if g.get("twice") or g["style"] == "shared":
        tags.append("shared layer or model (called twice)")
    if "merge" in g or "inner_merge" in g:
        tags.append("merge")
    if types["Bidirectional"] or types["TimeDistributed"]:
        tags.append("wrapper")
    if len(g["inputs"]) > 1:
        tags.append("several inputs")
    if g["style"] == "multi_io":
        tags.append("several outputs")
    if g.get("dict_io"):
        tags.append("dict inputs and outputs")
    if any(c.startswith("op:") for c in types):
        tags.append("operator nodes")
    if any("vocab" in i for i in g["inputs"]):
        tags.append("integer inputs")
    if types["ScaleShift"]:
        tags.append("custom layer")
    if unsupported(g):
        tags.append("an option the reference refuses")
    tags.append(f"{g['naming']} names")
    return tags


def blocks_deep(g: dict) -> list[dict]:
    """Every block, a TimeDistributed's inner one too."""
    out = []
    for b in blocks_of(g):
        while b is not None:
            out.append(b)
            b = b.get("inner") if b["block"] == "TimeDistributed" else None
    return out


def unsupported(g: dict) -> list[tuple[str, str]]:
    """(Keras class, option) of every block the float64 reference should refuse."""
    out = []
    for b in blocks_deep(g):
        option = BLOCKS[b["block"]].unsupported(_params(b))
        if option:
            out.append(("Cumsum" if b["block"] == "Operator" else BLOCKS[b["block"]].classes(_params(b))[0], option))
    return out


def _short(b: dict) -> str:
    p = _params(b)
    name = b["block"]
    if name == "TimeDistributed":
        return f"TimeDistributed({_short(p['inner'])})"
    if name == "Bidirectional":
        return f"Bidirectional({p['layer']}{', backward_layer' if p.get('backward_layer') else ''})"
    if name == "RNNState":
        u = BLOCKS[name].unsupported(p)
        return f"{p['layer']}(return_state)" + (f"[{u}]" if u else "")
    if name == "Identity":
        return p["layer"]
    if name == "Operator":
        return f"op.{p['op']}"
    detail = p.get("units") or p.get("filters") or p.get("activation") or ""
    u = BLOCKS[name].unsupported(p)
    return f"{name}({detail})" + (f"[{u}]" if u else "") if detail else name + (f"[{u}]" if u else "")


def describe(g: dict) -> str:
    """One line: the style, the inputs and the blocks of each part."""

    def chain(blocks):
        return " > ".join(_short(b) for b in blocks) or "-"

    ins = ", ".join(("ids" if "vocab" in i else "x") + str(tuple(i["shape"])) for i in g["inputs"])
    head = f"graph {g['seed']} {g['style']}"
    if g["style"] in ("sequential", "functional"):
        body = chain(g["blocks"])
    elif g["style"] == "branches":
        split = f"[{chain(g['left'])} | {chain(g['right'])}] {g['merge']['merge']}"
        body = f"{chain(g['trunk'])} > {split} > {chain(g['tail'])}"
    elif g["style"] == "shared":
        how = "twice" if g["twice"] else f"on both inputs, {g['merge']['merge']}"
        body = f"shared [{chain(g['shared'])}] {how} > {chain(g['tail'])}"
    elif g["style"] in ("nested_sequential", "nested_functional"):
        kind = "Sequential" if g["style"] == "nested_sequential" else "Model"
        k = g["deep"]
        inner = f"Sequential[{chain(g['inner'][:k])}] > {chain(g['inner'][k:])}" if k else chain(g["inner"])
        if "inner_merge" in g:
            inner += f"; 2 outputs (after block {g['inner_merge']['cut']}) {g['inner_merge']['merge']}"
        body = f"{chain(g['trunk'])} > {kind}[{inner}]{' x2' if g['twice'] else ''} > {chain(g['tail'])}"
        body = f"{g['outer']}: {body}"
    else:
        merge = f"Model[{g['merge']['merge']}]" if g["nested_merge"] else g["merge"]["merge"]
        body = " + ".join(f"[{chain(p)}]" for p in g["per_input"]) + f" {merge} > "
        body += " ; ".join(f"[{chain(h)}]" for h in g["heads"])
    return f"{head} ({ins}): {body}"


# -------------------------------------------------------------------------------- building


class _Namer:
    """Layer names per model: 'dense_0', 'dense_1', ... counted in each model apart, so a nested
    model's layers share names with the outer model's (as Keras allows); or Keras's own."""

    def __init__(self, naming: str):
        self.naming, self.counts = naming, Counter()

    def __call__(self, kind: str):
        if self.naming == "auto":
            return None
        self.counts[kind] += 1
        return f"{kind.lower()}_{self.counts[kind] - 1}"


def _make(b, namer):
    return BLOCKS[b["block"]].make(_params(b), namer(b["block"]))


def _chain(blocks, namer):
    fns = [_make(b, namer) for b in blocks]

    def apply(x):
        for fn in fns:
            x = fn(x)
        return x

    return apply


def _merge(m, tensors, namer):
    if m.get("flatten"):
        tensors = [L.Flatten(name=namer("Flatten"))(t) for t in tensors]
    if m["merge"] == "+":
        return tensors[0] + tensors[1]
    if m["merge"] == "MultiHeadAttention":
        layer = L.MultiHeadAttention(m["num_heads"], m["key_dim"], name=namer("MultiHeadAttention"))
        return layer(query=tensors[0], value=tensors[1]) if m["keywords"] else layer(tensors[0], tensors[1])
    if m["merge"] == "Attention":
        return L.Attention(name=namer("Attention"))(tensors)
    kw = {"axis": m["axis"]} if "axis" in m else {}
    return getattr(L, m["merge"])(name=namer(m["merge"]), **kw)(tensors)


def _inputs(g):
    return [
        keras.Input(tuple(i["shape"]), dtype="int32" if "vocab" in i else "float32", name=f"in{k}")
        for k, i in enumerate(g["inputs"])
    ]


def _layers(blocks, namer):
    return [_make(b, namer) for b in blocks]


def build(g: dict):
    """The Keras model a description says (its weights as Keras initialised them)."""
    namer, style = _Namer(g["naming"]), g["style"]
    name = f"gen{g['seed']}"
    xs = _inputs(g)
    if style == "sequential":
        return keras.Sequential([xs[0], *_layers(g["blocks"], namer)], name=name)
    if style in ("nested_sequential", "nested_functional"):
        inner = _inner_model(g, namer)
        if g["outer"] == "sequential":
            layers = [xs[0], *_layers(g["trunk"], namer), inner]
            return keras.Sequential(layers + _layers(g["tail"], namer), name=name)
        h = _chain(g["trunk"], namer)(xs[0])
        h = inner(inner(h)) if g["twice"] else inner(h)
        if "inner_merge" in g:
            h = _merge(g["inner_merge"], h, namer)
        return keras.Model(xs[0], _chain(g["tail"], namer)(h), name=name)
    if style == "functional":
        return keras.Model(xs[0], _chain(g["blocks"], namer)(xs[0]), name=name)
    if style == "branches":
        h = _chain(g["trunk"], namer)(xs[0])
        y = _merge(g["merge"], [_chain(g["left"], namer)(h), _chain(g["right"], namer)(h)], namer)
        return keras.Model(xs[0], _chain(g["tail"], namer)(y), name=name)
    if style == "shared":
        shared = _chain(g["shared"], namer)
        if g["twice"]:
            y = shared(shared(xs[0]))
        else:
            y = _merge(g["merge"], [shared(xs[0]), shared(xs[1])], namer)
        return keras.Model(xs if len(xs) > 1 else xs[0], _chain(g["tail"], namer)(y), name=name)
    # multi_io
    hs = [_chain(p, namer)(x) for p, x in zip(g["per_input"], xs)]
    if g["nested_merge"]:
        ins = [keras.Input(tuple(h.shape[1:]), dtype=h.dtype, name=f"in{k}") for k, h in enumerate(hs)]
        m = keras.Model(ins, _merge(g["merge"], ins, _Namer(g["naming"])), name=namer("Model"))(hs)
    else:
        m = _merge(g["merge"], hs, namer)
    ys = [_chain(h, namer)(m) for h in g["heads"]] + hs[:1] * g["branch_output"]
    if g["dict_io"]:
        return keras.Model({x.name: x for x in xs}, {f"out{k}": y for k, y in enumerate(ys)}, name=name)
    return keras.Model(xs, ys, name=name)


def _inner_model(g: dict, namer):
    """The nested model of a nested style: a Sequential (with or without an Input) or a
    functional model (with a second output where g has inner_merge), its first `deep` blocks
    in a Sequential of their own; its layers named apart from the outer model's."""
    inner_namer = _Namer(g["naming"])
    s = out_of(g["trunk"], _spec(g["inputs"][0]))
    fns = [_make(b, inner_namer) for b in g["inner"]]
    sizes = [1] * len(fns)
    if g["deep"]:
        fns = [keras.Sequential(fns[: g["deep"]], name=inner_namer("Sequential")), *fns[g["deep"] :]]
        sizes = [g["deep"], *sizes[g["deep"] :]]
    if g["style"] == "nested_sequential":
        head = [keras.Input(s.shape)] if g["inner_input"] else []
        return keras.Sequential(head + fns, name=namer("Sequential"))
    x = h = keras.Input(s.shape, name="in0")
    done, mid = 0, None
    for fn, size in zip(fns, sizes):
        h = fn(h)
        done += size
        if "inner_merge" in g and done == g["inner_merge"]["cut"]:
            mid = h
    return keras.Model(x, [h, mid] if mid is not None else h, name=namer("Model"))


def _spec(i: dict) -> Spec:
    return Spec(tuple(i["shape"]), i.get("vocab"))


def output_specs(g: dict, visit=None) -> list[tuple]:
    """The output shapes (batch left out) the description says, in keras.tree.flatten order.
    visit(block, input Spec), where given, sees every block with its input, a TimeDistributed's
    inner block with one step's."""

    def run(blocks, s):
        for b in blocks:
            if visit:
                visit(b, s)
                if b["block"] == "TimeDistributed":
                    run([b["inner"]], Spec(s.shape[1:]))
            s = BLOCKS[b["block"]].out(_params(b), s)
        return s

    s = [_spec(i) for i in g["inputs"]]
    style = g["style"]
    if style in ("sequential", "functional"):
        return [run(g["blocks"], s[0]).shape]
    if style == "branches":
        h = run(g["trunk"], s[0])
        return [run(g["tail"], merged(g["merge"], [run(g["left"], h), run(g["right"], h)])).shape]
    if style == "shared":
        a = run(g["shared"], s[0])
        a = run(g["shared"], a) if g["twice"] else merged(g["merge"], [a, a])
        return [run(g["tail"], a).shape]
    if style in ("nested_sequential", "nested_functional"):
        t = run(g["trunk"], s[0])
        h = run(g["inner"], t)
        if "inner_merge" in g:
            h = merged(g["inner_merge"], [h, out_of(g["inner"][: g["inner_merge"]["cut"]], t)])
        return [run(g["tail"], run(g["inner"], h) if g["twice"] else h).shape]
    hs = [run(p, x) for p, x in zip(g["per_input"], s)]
    m = merged(g["merge"], hs)
    ys = [run(h, m).shape for h in g["heads"]] + [hs[0].shape] * g["branch_output"]
    return ys  # a dict of outputs: keys out0, out1, out2 flatten in the same order


def block_inputs(g: dict) -> list[tuple[dict, Spec]]:
    """(block, its input) for every block of the graph, each call of a shared one once."""
    seen = []
    output_specs(g, lambda b, s: seen.append((b, s)))
    return seen


# ------------------------------------------------------------------------ weights and inputs

_UNIFORM = {
    "bias": (-0.2, 0.2),
    "gamma": (0.5, 1.5),
    "beta": (-0.3, 0.3),
    "moving_mean": (-0.3, 0.3),
    "moving_variance": (0.5, 1.5),  # positive, as every variance
    "mean": (-0.3, 0.3),
    "variance": (0.5, 1.5),
    "alpha": (0.05, 0.3),  # PReLU
    "scale": (0.5, 1.5),  # Attention
    "concat_score_weight": (0.5, 1.5),
    "gain": (0.5, 1.5),  # ScaleShift
}


def _fan_in(layer, leaf: str, shape: tuple) -> int:
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)) or leaf == "depthwise_kernel":
        return math.prod(shape[:-2])  # (k..., channels, multiplier): one channel each
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return math.prod(shape[:-2]) * shape[-1]  # (k..., out, in)
    if isinstance(layer, L.EinsumDense) and len(shape) == 3:  # MultiHeadAttention's projections
        return shape[0] * shape[1] if layer.name == "attention_output" else shape[0]
    return math.prod(shape[:-1]) if shape else 1


def _owners(model):
    """(variable, the layer that owns it), for every variable of the model."""
    owner = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for v in layer._trainable_variables + layer._non_trainable_variables:
            owner.setdefault(id(v), layer)
    return [(v, owner.get(id(v))) for v in model.weights]


def draw_weights(model, seed: int) -> list[np.ndarray]:
    """One array per model.weights entry from NumPy: kernels N(0, 1/fan-in) (activations stay
    O(1)), statistics and scales uniform on a positive range, biases and offsets small."""
    out = []
    for i, (v, layer) in enumerate(_owners(model)):
        rng = np.random.default_rng([seed, 7, i])
        leaf, shape = v.path.rsplit("/", 1)[-1], tuple(v.shape)
        if leaf == "count":
            a = np.full(shape, 100)
        elif leaf in _UNIFORM and not (leaf == "scale" and len(shape) > 1):
            a = rng.uniform(*_UNIFORM[leaf], size=shape)
        elif leaf == "embeddings":
            a = rng.standard_normal(shape) * 0.7
        elif len(shape) >= 2:
            a = rng.standard_normal(shape) / np.sqrt(_fan_in(layer, leaf, shape))
        else:
            a = rng.uniform(-0.2, 0.2, size=shape)
        out.append(np.asarray(a, dtype=str(v.dtype)))
    return out


def set_weights(model, seed: int) -> None:
    model.set_weights(draw_weights(model, seed))


def draw_inputs(g: dict, batch: int = BATCH) -> list[np.ndarray]:
    """The inputs, in the description's order: U(-1, 1), ids below the vocabulary."""
    rng = np.random.default_rng([g["seed"], 11])
    out = []
    for i in g["inputs"]:
        shape = (batch, *i["shape"])
        out.append(rng.integers(0, i["vocab"], shape).astype(np.int32) if "vocab" in i else rng.uniform(-1, 1, shape))
    return out


def save_and_load(g: dict, folder: Path, name: str | None = None):
    """Build the graph, draw its weights, save it as a .keras file and load it back as a user
    would (compile=False): (the loaded model, the file)."""
    model = build(g)
    set_weights(model, g["seed"])
    path = Path(folder) / f"{name or 'gen' + str(g['seed'])}.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False), path


# --------------------------------------------------------------------------------- coverage


def coverage(graphs_: list[dict]) -> tuple[Counter, Counter]:
    """How many graphs use each layer type, and show each construction style."""
    types, styles = Counter(), Counter()
    for g in graphs_:
        types.update(set(layer_types(g)))
        styles.update(set(styles_of(g)))
    return types, styles


# The options the reference refuses that the generator draws: every one must be in the seed set.
REFUSALS = (
    "BatchNormalization axis=1", "Embedding mask_zero=True", "Flatten data_format='channels_first'",
    "GroupNormalization axis=1", "UpSampling2D interpolation='bilinear'", "LSTM go_backwards=True",
    "GRU return_state=True", "SimpleRNN return_state=True", "Cumsum operator Cumsum",
    "ScaleShift a user's own layer class",
)  # fmt: skip


def _covers(g: dict) -> set:
    return set(layer_types(g)) | {f"{kind} {option}" for kind, option in unsupported(g)}


def uncovered(seeds=SEEDS) -> list[str]:
    """The layer types of the float64 reference (this project's own test layers and
    keras.applications' aside) and the refused options (REFUSALS) no graph of these seeds has."""
    from keras_parity.reference.layers import LAYERS

    used = set().union(*(_covers(from_seed(s)) for s in seeds))
    wanted = set(LAYERS) - {"BranchSelect", "ElementwiseScale", "LayerScale", "CustomScaleLayer"}
    return sorted((wanted | set(REFUSALS)) - used)


def cover_seeds(base=range(100), limit=5000) -> list[int]:
    """The first seeds after `base` that bring something uncovered() names (COVER_SEEDS)."""
    missing, extra, seed = set(uncovered(base)), [], max(base) + 1
    while missing and seed < limit:
        new = missing & _covers(from_seed(seed))
        if new:
            extra.append(seed)
            missing -= new
        seed += 1
    return extra


def table(seeds=SEEDS) -> str:
    gs = [from_seed(s) for s in seeds]
    types, styles = coverage(gs)
    never = uncovered(seeds)
    lines = [f"{len(gs)} graphs, {sum(len(blocks_deep(g)) for g in gs)} blocks"]
    lines += ["", "construction style                        graphs"]
    lines += [f"  {k:<40}{v:>5}" for k, v in sorted(styles.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", "layer type                                graphs"]
    lines += [f"  {k:<40}{v:>5}" for k, v in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]
    refused = Counter(r for g in gs for r in {f"{kind} {option}" for kind, option in unsupported(g)})
    lines += ["", "option the reference refuses              graphs"]
    lines += [f"  {k:<40}{v:>5}" for k, v in sorted(refused.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", f"reference layer types and refused options no graph has: {', '.join(never) or 'none'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", action="store_true", help="the coverage table of the fixed seed set")
    ap.add_argument("--show", type=int, metavar="SEED", help="one graph: its line and its description")
    ap.add_argument("--seeds", type=int, default=None, help="count seeds 0..N-1 instead of SEEDS")
    args = ap.parse_args(argv)
    if args.show is not None:
        g = from_seed(args.show)
        print(describe(g))
        print(json.dumps(g))
    if args.table or args.show is None:
        print(table(SEEDS if args.seeds is None else range(args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

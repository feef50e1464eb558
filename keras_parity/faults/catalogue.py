"""The fault catalogue: changes to Keras modeled on real upstream bugs, each a patch a backend
process runs after importing Keras (`parity --patch`), in memory: nothing installed is edited.

Each fault is the kind of change a release has shipped or a port has made: an epsilon moved
inside or outside a square root, a variance biased or not, a 'same' padding put on the other
side, a kernel flipped, LSTM gates in another framework's order, a default changed, a value
silently computed in a narrower float. PRELUDE gives every patch its two tools: `replace`, a
class's method swapped for a new one keeping its signature (Keras reads call signatures), and
`default`, a constructor argument's default changed.
"""

from __future__ import annotations

from dataclasses import dataclass

PRELUDE = '''
import functools
import inspect

import keras
from keras import ops
from keras.src import activations, losses


def replace(cls, name, make):
    """cls.name becomes make(the original), with the original's signature (Keras reads it
    through inspect.getfullargspec, which does not follow __wrapped__)."""
    original = getattr(cls, name)
    new = functools.wraps(original)(make(original))
    new.__signature__ = inspect.signature(original)
    setattr(cls, name, new)


def default(cls, arg, value):
    """A changed default: `arg` is `value` where the caller does not give it."""
    def make(original):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault(arg, value)
            original(self, *args, **kwargs)
        return __init__
    replace(cls, "__init__", make)
'''


@dataclass(frozen=True)
class Fault:
    """One planted change: its name, what it is modeled on, and the patch's source."""

    name: str
    kind: str  # the family: activation, normalization, convolution, recurrent, optimizer, loss, precision, ...
    modeled_on: str  # the upstream bug or change of behaviour it imitates
    source: str
    # A control: the same math rounded differently (a kernel or a fusion change does that); the
    # verdict must pass it, and a cell it fails is a false alarm, not a catch.
    rounding: bool = False

    def patch(self) -> str:
        """The whole patch file: the prelude, then the fault."""
        return PRELUDE + "\n" + self.source.strip() + "\n"


def _activation(name: str, body: str) -> str:
    """A patch making the string activation `name` (Dense(activation=name), LSTM's defaults) `body`."""
    return f"_original = activations.ALL_OBJECTS_DICT[{name!r}]\n" + (
        f"activations.ALL_OBJECTS_DICT[{name!r}] = lambda x: {body}\n"
    )


_ADAM_STEP = """
def make(original):
    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        b1, b2 = ops.cast(self.beta_1, variable.dtype), ops.cast(self.beta_2, variable.dtype)
        alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step)) if CORRECT else lr
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        root = ops.sqrt(ops.add(v, self.epsilon)) if INSIDE else ops.add(ops.sqrt(v), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), root))
    return update_step
replace(keras.optimizers.Adam, "update_step", make)
"""

_DENSE_CALL = """
def make(original):
    def call(self, inputs, training=None):
        {body}
    return call
replace(keras.layers.Dense, "call", make)
"""

_BATCH_NORM_OP = """
_original_bn = ops.batch_normalization
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    {body}
keras.src.ops.batch_normalization = batch_normalization
"""

_CONV_OP = """
def make(original):
    def convolution_op(self, inputs, kernel):
        {body}
    return convolution_op
replace(keras.src.layers.convolutional.base_conv.BaseConv, "convolution_op", make)
"""

_LSTM_GATES = """
def make(original):
    def fused(self, z, c_tm1):
        z0, z1, z2, z3 = z
        return original(self, {gates}, c_tm1)
    return fused
replace(keras.src.layers.rnn.lstm.LSTMCell, "_compute_carry_and_output_fused", make)
"""


def _faults() -> tuple[Fault, ...]:
    F = Fault
    return (
        # Dense
        F("dense-bias-dropped", "dense", "use_bias ignored by a refactored call (a quantized Dense's call path)",
          _DENSE_CALL.format(body="x = ops.matmul(inputs, self.kernel)\n        return self.activation(x)")),
        F("dense-activation-before-bias", "dense", "activation applied before the bias add (a fused-op ordering bug)",
          _DENSE_CALL.format(body="x = self.activation(ops.matmul(inputs, self.kernel))\n"
                                  "        return x + self.bias if self.bias is not None else x")),
        F("dense-matmul-bfloat16", "precision", "a matmul silently in bfloat16 (JAX's default matmul precision "
          "on accelerators, TF32 on by default)",
          _DENSE_CALL.format(body="x = ops.cast(ops.matmul(ops.cast(inputs, 'bfloat16'), ops.cast(self.kernel, "
                                  "'bfloat16')), inputs.dtype)\n"
                                  "        x = x + self.bias if self.bias is not None else x\n"
                                  "        return self.activation(x)")),
        # activations
        F("sigmoid-hard", "activation", "'sigmoid' resolved to hard_sigmoid (Keras 2's LSTM default)",
          _activation("sigmoid", "ops.hard_sigmoid(x)")),
        F("sigmoid-float16", "precision", "sigmoid computed in float16 and cast back (a silent downcast)",
          _activation("sigmoid", "ops.cast(_original(ops.cast(x, 'float16')), x.dtype)")),
        F("relu-leaky", "activation", "'relu' with a negative slope of 0.01 (a leaky default)",
          _activation("relu", "ops.leaky_relu(x, 0.01)")),
        F("relu-layer-slope-default", "default", "ReLU layer's negative_slope default changed from 0 to 0.01",
          "default(keras.layers.ReLU, 'negative_slope', 0.01)"),
        F("tanh-via-sigmoid", "rounding control", "tanh as 2 sigmoid(2x) - 1: the same function, rounded as "
          "another kernel rounds it (XLA rewrites tanh this way under fast math)",
          _activation("tanh", "2.0 * ops.sigmoid(2.0 * x) - 1.0"), rounding=True),
        F("dense-sum-reordered", "rounding control", "a Dense's dot products summed in two halves: the same "
          "sums in another order, as a blocked or multithreaded matmul does",
          _DENSE_CALL.format(body="kernel, k = ops.convert_to_tensor(self.kernel), self.kernel.shape[0] // 2\n"
                                  "        x = ops.matmul(inputs[..., :k], kernel[:k]) + ops.matmul(inputs[..., k:], "
                                  "kernel[k:])\n"
                                  "        x = x + self.bias if self.bias is not None else x\n"
                                  "        return self.activation(x)"), rounding=True),
        F("tanh-float16", "precision", "tanh computed in float16 (a silent downcast)",
          _activation("tanh", "ops.cast(_original(ops.cast(x, 'float16')), x.dtype)")),
        # BatchNormalization
        F("bn-epsilon-outside-sqrt", "normalization", "x / (sqrt(var) + eps) instead of x / sqrt(var + eps)",
          _BATCH_NORM_OP.format(body="y = (x - mean) / (ops.sqrt(variance) + epsilon)\n"
                                     "    y = y * scale if scale is not None else y\n"
                                     "    return y + offset if offset is not None else y")),
        F("bn-scale-offset-swapped", "normalization", "gamma and beta swapped (a weight-conversion bug)",
          _BATCH_NORM_OP.format(body="return _original_bn(x, mean, variance, axis, scale, offset, epsilon)")),
        F("bn-unbiased-variance", "normalization", "the batch variance unbiased (n - 1, PyTorch's for its running "
          "estimate) where Keras normalizes with the biased one",
          "def make(original):\n    def _moments(self, inputs, mask):\n"
          "        mean, var = original(self, inputs, mask)\n"
          "        n = ops.cast(ops.size(inputs), var.dtype) / ops.cast(ops.size(mean), var.dtype)\n"
          "        return mean, var * n / (n - 1.0)\n    return _moments\n"
          "replace(keras.layers.BatchNormalization, '_moments', make)"),
        F("bn-momentum-inverted", "normalization", "momentum read as PyTorch's (weight of the new batch, 1 - m)",
          "def make(original):\n    def call(self, *args, **kwargs):\n        kept, self.momentum = self.momentum, "
          "1.0 - self.momentum\n        try:\n            return original(self, *args, **kwargs)\n"
          "        finally:\n            self.momentum = kept\n    return call\n"
          "replace(keras.layers.BatchNormalization, 'call', make)"),
        F("bn-inference-batch-statistics", "normalization", "inference normalizing with the batch's statistics "
          "(the training flag lost on the way down)",
          "def make(original):\n    def call(self, inputs, training=None, mask=None):\n"
          "        return original(self, inputs, training=True, mask=mask)\n    return call\n"
          "replace(keras.layers.BatchNormalization, 'call', make)"),
        # convolutions
        F("conv-kernel-flipped", "convolution", "a true convolution (kernel flipped) where Keras correlates",
          "_original = keras.src.ops.conv\n"
          "def conv(inputs, kernel, *args, **kwargs):\n"
          "    return _original(inputs, ops.flip(kernel, axis=tuple(range(kernel.ndim - 2))), *args, **kwargs)\n"
          "keras.ops.conv = keras.src.ops.conv = conv"),
        F("conv-same-padding-leading", "convolution", "'same' padding of a strided conv put before, not after "
          "(TensorFlow pads the extra row at the end, a port padding it at the start)",
          _CONV_OP.format(body="if self.padding != 'same' or all(s == 1 for s in self.strides):\n"
                               "            return original(self, inputs, kernel)\n"
                               "        pads = [(0, 0)]\n"
                               "        for n, k, s in zip(inputs.shape[1:-1], kernel.shape[:-2], self.strides):\n"
                               "            total = max((-(-n // s) - 1) * s + k - n, 0)\n"
                               "            pads.append((total - total // 2, total // 2))\n"
                               "        x = ops.pad(inputs, pads + [(0, 0)])\n"
                               "        return ops.conv(x, kernel, strides=list(self.strides), padding='valid', "
                               "dilation_rate=self.dilation_rate, data_format=self.data_format)")),
        F("conv1d-same-as-causal", "convolution", "Conv1D 'same' padded on the left only (causal)",
          "def make(original):\n    def call(self, inputs):\n        if self.padding != 'same':\n"
          "            return original(self, inputs)\n        kept, self.padding = self.padding, 'causal'\n"
          "        try:\n            return original(self, inputs)\n        finally:\n"
          "            self.padding = kept\n    return call\nreplace(keras.layers.Conv1D, 'call', make)"),
        F("flatten-channels-first", "reshaping", "Flatten in channels-first order (the classic port of a PyTorch "
          "head onto a channels-last network)",
          "def make(original):\n    def call(self, inputs):\n        if len(inputs.shape) == 4:\n"
          "            inputs = ops.transpose(inputs, (0, 3, 1, 2))\n        return original(self, inputs)\n"
          "    return call\nreplace(keras.layers.Flatten, 'call', make)"),
        # LSTM
        F("lstm-gate-order", "recurrent", "gates in i, c, f, o order (weights converted from cuDNN's or a "
          "framework's other order)", _LSTM_GATES.format(gates="(z0, z2, z1, z3)")),
        F("lstm-forget-bias-doubled", "recurrent", "the forget gate's bias of 1 added at every call "
          "(unit_forget_bias applied twice)", _LSTM_GATES.format(gates="(z0, z1 + 1.0, z2, z3)")),
        F("lstm-recurrent-activation-default", "default", "LSTM's recurrent_activation default back to "
          "hard_sigmoid (Keras 2)", "default(keras.layers.LSTM, 'recurrent_activation', 'hard_sigmoid')"),
        F("lstm-activation-default", "default", "LSTM's activation default changed from tanh to linear",
          "default(keras.layers.LSTM, 'activation', 'linear')"),
        # optimizers
        F("sgd-weight-decay-default", "default", "SGD's weight_decay default changed from None to 1e-4",
          "default(keras.optimizers.SGD, 'weight_decay', 1e-4)"),
        F("sgd-momentum-dampening", "optimizer", "momentum with PyTorch's dampening: the gradient weighted by "
          "1 - momentum",
          "def make(original):\n    def update_step(self, gradient, variable, learning_rate):\n"
          "        return original(self, ops.multiply(gradient, 1.0 - self.momentum), variable, learning_rate)\n"
          "    return update_step\nreplace(keras.optimizers.SGD, 'update_step', make)"),
        F("adam-epsilon-default", "default", "Adam's epsilon default 1e-7 -> 1e-8 (torch.optim.Adam's)",
          "default(keras.optimizers.Adam, 'epsilon', 1e-8)"),
        F("adam-amsgrad-default", "default", "Adam's amsgrad default changed to True",
          "default(keras.optimizers.Adam, 'amsgrad', True)"),
        F("adam-beta2-default", "default", "Adam's beta_2 default 0.999 -> 0.99",
          "default(keras.optimizers.Adam, 'beta_2', 0.99)"),
        F("adam-no-bias-correction", "optimizer", "Adam without its bias correction",
          "CORRECT, INSIDE = False, False\n" + _ADAM_STEP),
        F("adam-epsilon-inside-sqrt", "optimizer", "Adam's epsilon inside the square root (TF1's 'epsilon hat')",
          "CORRECT, INSIDE = True, True\n" + _ADAM_STEP),
        # losses
        F("mse-reduction-sum", "default", "the losses' default reduction changed to 'sum'",
          "default(keras.losses.MeanSquaredError, 'reduction', 'sum')"),
        F("mse-halved", "loss", "MSE halved (TensorFlow's l2_loss convention, 0.5 * sum of squares)",
          "_original = losses.losses.mean_squared_error\n"
          "losses.losses.mean_squared_error = lambda y_true, y_pred: 0.5 * _original(y_true, y_pred)"),
        # keras.ops
        F("cond-branches-swapped", "control flow", "ops.cond taking the false branch for a true predicate",
          "_original = keras.src.ops.cond\n"
          "keras.ops.cond = keras.src.ops.cond = lambda pred, true_fn, false_fn: _original(pred, false_fn, true_fn)"),
        F("multiply-float16", "precision", "ops.multiply of floats silently in float16 (a value downcast on the "
          "way through)",
          "_original = keras.src.ops.multiply\n"
          "def multiply(x1, x2):\n"
          "    if not any('float32' in str(getattr(x, 'dtype', '')) for x in (x1, x2)):\n"
          "        return _original(x1, x2)\n"
          "    return ops.cast(_original(ops.cast(x1, 'float16'), ops.cast(x2, 'float16')), 'float32')\n"
          "keras.ops.multiply = keras.src.ops.multiply = multiply"),
    )  # fmt: skip


FAULTS: tuple[Fault, ...] = _faults()
CI_SLICE = ("dense-bias-dropped", "bn-epsilon-outside-sqrt", "conv-kernel-flipped", "adam-epsilon-default")


def named(names: list[str] | None) -> tuple[Fault, ...]:
    """The faults of `names` (all when None), in catalogue order; an unknown name is a UsageError."""
    from keras_parity.errors import UsageError

    known = {f.name: f for f in FAULTS}
    for n in names or []:
        if n not in known:
            raise UsageError(f"unknown fault '{n}'; choose from: {', '.join(known)}")
    return tuple(f for f in FAULTS if names is None or f.name in names)

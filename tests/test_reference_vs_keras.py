"""The float64 reference against Keras itself running the registry models in float64.

Skipped without Keras. Run under any backend; TensorFlow is the strict one: on JAX and
torch, Keras computes some ops in float32 even in a float64 model (see LEAKY).
"""

import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import keras_in_float64

if "KERAS_BACKEND" not in os.environ:
    for _backend in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(_backend) is not None:
            os.environ["KERAS_BACKEND"] = _backend
            break

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from keras_parity.registry.builtin import models_package  # noqa: E402

models_package()  # keras_parity.models: the checkout's models/ (keras_parity/registry/builtin.py)
from keras_parity.models import bn_mlp, cnn, linear, lstm, resnet50  # noqa: E402

from keras_parity.reference import UnsupportedLayer, evaluate  # noqa: E402
from keras_parity.run.varpaths import variable_paths  # noqa: E402

BACKEND = keras.backend.backend()
TOL = 1e-10  # max |keras - ref| / max |keras|, with Keras truly in float64
# Keras is truly float64 only on TensorFlow. keras.src.backend.common.dtypes.result_type
# maps float64 to float32 on every other backend, and ops that route their dtype through
# it compute in float32 inside a float64 model: on torch ops.matmul (Dense, LSTM cell),
# on JAX ops.tanh (the LSTM cell) and on both BatchNormalization, which casts its input
# to result_type(inputs.dtype, "float32"). Models with those layers get a float32-level
# tolerance there; TensorFlow checks everything at TOL.
LEAKY = {
    "tensorflow": set(),
    "jax": {"LSTM", "BatchNormalization"},
    "torch": {"Dense", "LSTM", "BatchNormalization", "BranchSelect"},
}.get(BACKEND, {"*"})
LEAKY_TOL = 1e-5
LEAKY_TOL_DEEP = 1e-4  # ResNet50: 53 float32 BN layers in a row


def tolerance(model, leaky_tol=LEAKY_TOL):
    classes = {layer.__class__.__name__ for layer in model.layers}
    return leaky_tol if "*" in LEAKY or classes & LEAKY else TOL


@pytest.fixture(scope="module", autouse=True)
def float64_keras():
    """floatx float64 (and x64 on JAX) for this module only, restored afterwards."""
    old_x64 = None
    if BACKEND == "jax":
        import jax

        old_x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
    with keras_in_float64():
        yield
    if old_x64 is not None:
        import jax

        jax.config.update("jax_enable_x64", old_x64)


def set_random_weights(model, seed=0):
    """Moderate-scale float64 weights: fan-in scaled kernels, BN stats near identity."""
    rng = np.random.default_rng(seed)
    arrays = []
    for v in model.weights:
        leaf, shape = v.path.rsplit("/", 1)[-1], tuple(v.shape)
        if leaf in ("kernel", "recurrent_kernel"):
            gain = 2.0 if len(shape) > 2 else 1.0
            arrays.append(rng.standard_normal(shape) * np.sqrt(gain / np.prod(shape[:-1])))
        elif leaf in ("gamma", "moving_variance"):
            arrays.append(rng.uniform(0.8, 1.2, shape))
        elif leaf == "scale":
            arrays.append(rng.uniform(0.5, 1.5, shape))
        else:
            arrays.append(rng.uniform(-0.1, 0.1, shape))
    model.set_weights(arrays)
    return dict(zip(variable_paths(model), arrays))


def random_inputs(model, batch, seed=1, fill=None):
    rng = np.random.default_rng(seed)
    out = {}
    for t in model.inputs:
        shape = (batch, *t.shape[1:])
        out[t.name] = np.full(shape, fill) if fill is not None and t.name == "flag" else rng.uniform(-1, 1, shape)
    return out


def keras_call(model, inputs, training):
    xs = [inputs[t.name] for t in model.inputs]
    # Match the structure the model was built with, or Keras warns.
    outs = model(xs if isinstance(model.input, (list, tuple)) else xs[0], training=training)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [keras.ops.convert_to_numpy(o) for o in outs]


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, what
    if tol == TOL:
        assert want.dtype == np.float64, f"{what}: keras gave {want.dtype}, the test needs float64"
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def bn_stats(model):
    return {
        v.path: keras.ops.convert_to_numpy(v.value)
        for v in model.weights
        if v.path.endswith(("/moving_mean", "/moving_variance"))
    }


CASES = [
    (linear.dense_nobias, {}, False),
    (linear.sigmoid_mlp, {}, False),
    (linear.scale_layer, {}, False),
    (linear.branch_select, {"fill": 1.0}, False),
    (linear.branch_select, {"fill": 0.0}, False),
    (cnn.conv2d, {}, False),
    (cnn.conv1d_same, {}, False),
    (cnn.conv1d_valid, {}, False),
    (bn_mlp.bn_mlp, {}, False),
    (bn_mlp.bn_mlp, {}, True),
    (lstm.lstm, {}, False),
    (lstm.lstm, {}, True),
]


@pytest.mark.parametrize(
    "builder,input_kw,training",
    CASES,
    ids=[f"{b.__name__}{'-flag' + str(k['fill']) if k else ''}{'-train' if t else ''}" for b, k, t in CASES],
)
def test_model_outputs(builder, input_kw, training):
    model = builder()
    tol = tolerance(model)
    weights = set_random_weights(model)
    inputs = random_inputs(model, batch=4, **input_kw)
    before = bn_stats(model)
    want = keras_call(model, inputs, training)
    result = evaluate(model.get_config(), weights, inputs, training=training)
    assert len(result.outputs) == len(want)
    for i, (got, ref) in enumerate(zip(result.outputs, want)):
        assert_close(got, ref, tol, f"{builder.__name__} output {i}")
    after = bn_stats(model)
    if training and after:
        assert set(result.updated) == set(after)
        for path, value in after.items():
            assert not np.array_equal(value, before[path])
            assert_close(result.updated[path], value, tol, path)
    else:
        assert result.updated == {}


def test_capture_matches_every_keras_layer():
    model = cnn.conv2d()
    tol = tolerance(model)
    weights = set_random_weights(model)
    inputs = random_inputs(model, batch=3)
    names = [layer.name for layer in model.layers]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    want = dict(zip(names, keras_call(probe, inputs, False)))
    result = evaluate(model.get_config(), weights, inputs, capture=True)
    assert set(result.layers) == set(names)
    for name in names:
        assert_close(result.layers[name], want[name], tol, name)


def test_resnet50_inference_and_moving_stats():
    model = resnet50.resnet50()
    tol = tolerance(model, LEAKY_TOL_DEEP)
    weights = set_random_weights(model)
    inputs = random_inputs(model, batch=2)
    config = model.get_config()
    for training in (False, True):
        want = keras_call(model, inputs, training)
        start = time.perf_counter()
        result = evaluate(config, weights, inputs, training=training)
        seconds = time.perf_counter() - start
        print(f"float64 reference ResNet50 batch 2, training={training}: {seconds:.2f} s")
        assert_close(result.outputs[0], want[0], tol, f"resnet50 training={training}")
    stats = bn_stats(model)
    assert len(stats) == 2 * 53 and set(result.updated) == set(stats)
    for path, value in stats.items():
        assert_close(result.updated[path], value, tol, path)


RELU_OPTIONS = [
    {},
    {"max_value": 6.0},
    {"negative_slope": 0.1},
    {"threshold": 0.3},
    {"negative_slope": 0.2, "max_value": 0.5, "threshold": 0.1},
    {"negative_slope": 0.3, "threshold": 0.2},
]


@pytest.mark.parametrize("options", RELU_OPTIONS, ids=[str(o) for o in RELU_OPTIONS])
def test_relu_options(options):
    x = keras.Input((50,), name="x")
    model = keras.Model(x, keras.layers.ReLU(**options, name="relu")(x))
    inputs = {"x": np.linspace(-2, 2, 200).reshape(4, 50)}
    want = keras_call(model, inputs, False)[0]
    tol = TOL
    if BACKEND == "tensorflow" and set(options) == {"negative_slope"}:
        # This case goes to tf.nn.leaky_relu, whose alpha is a float32 op attribute:
        # TF uses float32(0.1), off by 1.5e-9, even in float64.
        tol = 1e-8
    assert_close(evaluate(model.get_config(), {}, inputs).outputs[0], want, tol, str(options))


def test_layer_options_mix():
    """Options the registry models leave at defaults: asymmetric ZeroPadding2D, bias-free
    'same' stride-2 conv, 'same' max pooling, BN without center, keepdims, softmax."""
    layers = keras.layers
    x = keras.Input((6, 7, 3), name="x")
    h = layers.ZeroPadding2D(((1, 2), (0, 1)), name="pad")(x)
    h = layers.Conv2D(4, (3, 2), strides=(2, 3), padding="same", use_bias=False, name="conv")(h)
    h = layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(h)
    h = layers.BatchNormalization(center=False, epsilon=0.01, name="bn")(h)
    h = layers.Activation("tanh", name="act")(h)
    h = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(h)
    h = layers.Flatten(name="flat")(h)
    y = layers.Dense(3, activation="softmax", name="probs")(h)
    model = keras.Model(x, y)
    weights = set_random_weights(model)
    inputs = random_inputs(model, batch=3)
    for training in (False, True):
        want = keras_call(model, inputs, training)[0]
        got = evaluate(model.get_config(), weights, inputs, training=training).outputs[0]
        assert_close(got, want, tolerance(model), f"training={training}")


@pytest.mark.parametrize(
    "options",
    [{}, {"axis": [1, 2], "epsilon": 0.1}, {"center": False}, {"scale": False, "axis": 1}, {"rms_scaling": True}],
    ids=["default", "axes-1-2", "no-center", "no-scale-axis-1", "rms"],
)
def test_layer_normalization_and_dropout(options):
    """Layers users' models have that the registry models do not: LayerNormalization with its
    options, and Dropout (the identity at inference; in training the reference refuses)."""
    layers = keras.layers
    x = keras.Input((3, 4, 5), name="x")
    h = layers.LayerNormalization(name="ln", **options)(x)
    h = layers.Dropout(0.5, name="drop")(layers.Dense(6, name="d")(h))
    model = keras.Model(x, h)
    weights = set_random_weights(model)
    weights = {k: v * 3.0 if k.endswith("gamma") else v for k, v in weights.items()}  # not near 1
    model.set_weights(list(weights.values()))
    inputs = {k: v * 4.0 + 1.0 for k, v in random_inputs(model, batch=2).items()}  # mean and scale to remove
    want = keras_call(model, inputs, False)[0]
    assert_close(evaluate(model.get_config(), weights, inputs).outputs[0], want, tolerance(model), str(options))
    with pytest.raises(UnsupportedLayer, match="random mask of 'drop'"):
        evaluate(model.get_config(), weights, inputs, training=True)

"""The float64 reference, layer by layer, on cases small enough to check by hand.

Only numpy, pytest and keras_parity.reference: this must hold without any Keras installed.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from keras_parity.reference import UnsupportedLayer, evaluate  # noqa: E402
from keras_parity.reference import ops as L  # noqa: E402


def naive_conv(x, kernel, strides, pads):
    """Loop-per-output cross-correlation: slow, obviously right, 1-d or 2-d."""
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    ks, nd = kernel.shape[:-2], x.ndim - 2
    out_shape = [(x.shape[1 + i] - ks[i]) // strides[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out_shape, kernel.shape[-1]))
    for pos in np.ndindex(*out_shape):
        sl = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, ks))
        patch = x[(slice(None), *sl)]
        y[(slice(None), *pos)] = np.tensordot(patch, kernel, axes=nd + 1)
    return y


# ------------------------------------------------------------------------------ activations


def test_relu_defaults_and_options():
    x = np.array([-2.0, -0.5, 0.0, 0.25, 0.5, 1.0, 7.0])
    np.testing.assert_array_equal(L.relu(x), [0, 0, 0, 0.25, 0.5, 1, 7])
    np.testing.assert_array_equal(L.relu(x, max_value=6.0), [0, 0, 0, 0.25, 0.5, 1, 6])
    np.testing.assert_allclose(L.relu(x, negative_slope=0.1), [-0.2, -0.05, 0, 0.25, 0.5, 1, 7])
    # Threshold 0.5: x > 0.5 passes, the rest (0.5 itself included) is 0.
    np.testing.assert_array_equal(L.relu(x, threshold=0.5), [0, 0, 0, 0, 0, 1, 7])
    # Below the threshold the slope applies to (x - threshold); above, max_value clips.
    np.testing.assert_allclose(
        L.relu(x, negative_slope=0.5, max_value=2.0, threshold=0.5),
        [-1.25, -0.5, -0.25, -0.125, 0, 1, 2],
    )


def test_sigmoid_tanh_softmax():
    np.testing.assert_allclose(L.sigmoid(np.array([0.0, np.log(3.0)])), [0.5, 0.75], rtol=1e-15)
    with np.errstate(over="raise"):
        tails = L.sigmoid(np.array([-800.0, 800.0]))
    assert tails[0] == np.exp(-800.0) and tails[1] == 1.0
    s = L.softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    np.testing.assert_allclose(s, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    assert L.activation("tanh", np.array([0.5])) == np.tanh(0.5)
    assert L.activation(None, np.array([-3.0])) == -3.0


def test_unknown_activation_raises():
    with pytest.raises(UnsupportedLayer, match="activation 'threshold'"):
        L.activation("threshold", np.zeros(2))


# ------------------------------------------------------------------------- dense and conv


def test_dense_broadcasts_over_leading_axes():
    x = np.arange(12.0).reshape(2, 3, 2)
    k = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    y = L.dense(x, k, np.array([0.0, 10.0, 0.0]))
    np.testing.assert_array_equal(y[1, 2], [10.0, 11.0 + 10.0, 2 * 10.0 - 11.0])


@pytest.mark.parametrize(
    "size,k,stride,pads",
    [
        (8, 3, 2, (0, 1)),
        (7, 3, 2, (1, 1)),
        (8, 3, 1, (1, 1)),
        (5, 4, 1, (1, 2)),
        (5, 1, 2, (0, 0)),
        (4, 7, 1, (3, 3)),
        (2, 1, 3, (0, 0)),
    ],
)
def test_same_padding_is_tensorflow_asymmetric(size, k, stride, pads):
    assert L.same_padding(size, k, stride) == pads


def test_1x1_conv_equals_dense():
    rng = np.random.default_rng(0)
    x, k, b = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(1, 1, 4, 6)), rng.normal(size=6)
    np.testing.assert_allclose(L.conv(x, k, b), x @ k[0, 0] + b, rtol=1e-14)


def test_conv2d_same_stride2_pads_after_only():
    # 4x4 ones-kernel sums of arange(16): out 2x2, pad 0 rows/cols before, 1 after.
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y = L.conv(x, np.ones((3, 3, 1, 1)), strides=(2, 2), padding="same")[0, :, :, 0]
    img = x[0, :, :, 0]
    want = [[img[0:3, 0:3].sum(), img[0:3, 2:4].sum()], [img[2:4, 0:3].sum(), img[2:4, 2:4].sum()]]
    np.testing.assert_array_equal(y, want)


def test_conv1d_valid_and_same_by_hand():
    x = np.arange(6.0).reshape(1, 6, 1)
    k = np.array([1.0, 0.0, -1.0]).reshape(3, 1, 1)  # y[t] = x[t] - x[t+2] (cross-correlation)
    np.testing.assert_array_equal(L.conv(x, k)[0, :, 0], [-2, -2, -2, -2])
    # 'same', stride 1: one zero on each side, so the ends see a 0 neighbour.
    np.testing.assert_array_equal(L.conv(x, k, padding="same")[0, :, 0], [-1, -2, -2, -2, -2, 4])


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("ksize,strides", [((3,), (1,)), ((2,), (3,)), ((3, 2), (2, 1)), ((1, 3), (2, 2))])
def test_conv_matches_naive_loops(ksize, strides, padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, *(7 for _ in ksize), 3))
    kernel = rng.normal(size=(*ksize, 3, 4))
    pads = [L.same_padding(7, k, s) if padding == "same" else (0, 0) for k, s in zip(ksize, strides)]
    want = naive_conv(x, kernel, strides, pads)
    np.testing.assert_allclose(L.conv(x, kernel, strides=strides, padding=padding), want, rtol=1e-12)


# ---------------------------------------------------------------------------------- pooling


def test_max_pool_on_arange():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(L.max_pool(x, (2, 2))[0, :, :, 0], [[5, 7], [13, 15]])
    # pool 3 stride 2 'same' on 4: windows start at 0 and 2, the second one padded after.
    np.testing.assert_array_equal(L.max_pool(x, (3, 3), (2, 2), "same")[0, :, :, 0], [[10, 11], [14, 15]])


def test_max_pool_same_padding_never_wins():
    # All values negative: a zero pad would win the border windows; -inf padding must not.
    x = -np.arange(1.0, 17.0).reshape(1, 4, 4, 1)
    y = L.max_pool(x, (2, 2), (1, 1), "same")[0, :, :, 0]
    assert y[3, 3] == -16.0 and y[0, 3] == -4.0 and y.max() < 0


# ---------------------------------------------------------------------------- batch norm


def test_batch_norm_inference_formula():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    y, m, v = L.batch_norm(
        x, np.array([2.0, 1.0]), np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([4.0, 16.0]), 0.0, 0.9
    )
    np.testing.assert_array_equal(y, [[0.0, 1.0], [2.0, 2.0]])  # 2*(x-1)/2, (x-2)/4+1
    np.testing.assert_array_equal(v, [4.0, 16.0])


def test_batch_norm_training_two_samples():
    # Per channel: mean (1+3)/2 = 2, (10+30)/2 = 20; biased variance 1 and 100.
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    y, m, v = L.batch_norm(x, None, None, np.zeros(2), np.ones(2), 0.0, 0.9, training=True)
    np.testing.assert_array_equal(y, [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(m, [0.2, 2.0], rtol=1e-15)  # 0.9*0 + 0.1*mean
    np.testing.assert_allclose(v, [1.0, 10.9], rtol=1e-15)  # 0.9*1 + 0.1*biased var


def test_batch_norm_reduces_over_all_but_channels():
    x = np.arange(24.0).reshape(2, 3, 4)
    _, m, _ = L.batch_norm(x, None, None, np.zeros(4), np.ones(4), 1e-3, 0.0, training=True)
    np.testing.assert_allclose(m, x.reshape(-1, 4).mean(axis=0))


# ---------------------------------------------------------------------------------- LSTM


def _gates_bias(i, f, c, o, units=2):
    return np.repeat([i, f, c, o], units).astype(float)


def test_lstm_zero_weights_stays_zero():
    out, h, c = L.lstm(np.ones((3, 5, 2)), np.zeros((2, 8)), np.zeros((2, 8)), np.zeros(8))
    assert not out.any() and not h.any() and not c.any()


def test_lstm_bias_only_two_steps_by_hand():
    # Zero kernels: every step sees only the bias. Gate order i, f, c, o.
    bi, bf, bc, bo = 0.0, np.log(3.0), 1.0, -np.log(3.0)  # sigmoid: 0.5, 0.75, -, 0.25
    out, h, c = L.lstm(
        np.ones((1, 2, 3)), np.zeros((3, 8)), np.zeros((2, 8)), _gates_bias(bi, bf, bc, bo), return_sequences=True
    )
    c1 = 0.5 * np.tanh(1.0)
    c2 = 0.75 * c1 + 0.5 * np.tanh(1.0)
    np.testing.assert_allclose(out[0, :, 0], [0.25 * np.tanh(c1), 0.25 * np.tanh(c2)], rtol=1e-15)
    np.testing.assert_allclose(c[0], [c2, c2], rtol=1e-15)
    np.testing.assert_array_equal(h, out[:, -1])


def test_lstm_kernel_and_recurrent_kernel_paths():
    # One unit, input 1: z = x*K + h*R. Check step 2 against a hand unroll.
    k, r = np.array([[0.5, -1.0, 2.0, 0.3]]), np.array([[1.0, 0.2, -0.5, 0.7]])
    x = np.array([[[1.0], [-2.0]]])
    sg = L.sigmoid
    h = c = 0.0
    for xt in (1.0, -2.0):
        z = xt * k[0] + h * r[0]
        c = sg(z[1]) * c + sg(z[0]) * np.tanh(z[2])
        h = sg(z[3]) * np.tanh(c)
    out, _, _ = L.lstm(x, k, r)
    np.testing.assert_allclose(out[0, 0], h, rtol=1e-15)


# ------------------------------------------------------------------ graph walker (no Keras)


def tensor(name, node=0, index=0, shape=None):
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": "float32", "keras_history": [name, node, index]},
    }


def layer(class_name, name, *nodes, **config):
    return {
        "class_name": class_name,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [{"args": list(args), "kwargs": kwargs} for args, kwargs in nodes],
    }


def input_layer(name, shape):
    return layer("InputLayer", name, batch_shape=[None, *shape])


def model(layers, inputs, outputs):
    return {"name": "m", "layers": layers, "input_layers": inputs, "output_layers": outputs}


def test_add_nested_args_and_input_forms():
    cfg = model(
        [
            input_layer("a", (2,)),
            input_layer("b", (2,)),
            layer("Add", "add", ([[tensor("a"), tensor("b"), tensor("a")]], {})),
        ],
        [["a", 0, 0], ["b", 0, 0]],
        ["add", 0, 0],
    )
    a, b = np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]], dtype=np.float32)
    for inputs in ({"a": a, "b": b}, [a, b]):
        (y,) = evaluate(cfg, {}, inputs).outputs
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y, [[12.0, 24.0]])


def test_shared_layer_multi_output_capture_and_order():
    # Dense "d" called twice (node 1 feeds on node 0), layers listed out of order.
    cfg = model(
        [
            layer(
                "Dense",
                "d",
                ([tensor("x")], {}),
                ([tensor("d", 0)], {"training": True}),
                units=2,
                activation="linear",
                use_bias=True,
            ),
            input_layer("x", (2,)),
            layer("Activation", "neg", ([tensor("d", 1)], {"mask": None}), activation="relu"),
        ],
        ["x", 0, 0],
        [["neg", 0, 0], ["d", 0, 0]],
    )
    w = {"d/kernel": np.array([[0.0, 1.0], [1.0, 0.0]]), "d/bias": np.array([1.0, -10.0])}
    res = evaluate(cfg, w, np.array([[3.0, 4.0]]), capture=True)
    np.testing.assert_array_equal(res.outputs[1], [[5.0, -7.0]])  # swap, plus bias
    np.testing.assert_array_equal(res.outputs[0], [[0.0, 0.0]])  # relu([-6, -5])
    assert set(res.layers) == {"x", "d", "d@1", "neg"}
    np.testing.assert_array_equal(res.layers["d@1"], [[-6.0, -5.0]])


def test_lstm_return_state_feeds_by_tensor_index():
    lstm_cfg = dict(
        units=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        return_sequences=True,
        return_state=True,
        go_backwards=False,
        stateful=False,
    )
    cfg = model(
        [
            input_layer("x", (2, 1)),
            layer("LSTM", "lstm", ([tensor("x")], {}), **lstm_cfg),
            layer("Add", "hc", ([[tensor("lstm", 0, 1), tensor("lstm", 0, 2)]], {})),
        ],
        ["x", 0, 0],
        [["lstm", 0, 0], ["hc", 0, 0]],
    )
    w = {
        "lstm/lstm_cell/kernel": np.zeros((1, 4)),
        "lstm/lstm_cell/recurrent_kernel": np.zeros((1, 4)),
        "lstm/lstm_cell/bias": np.array([0.0, 0.0, 1.0, 0.0]),
    }
    res = evaluate(cfg, w, np.zeros((1, 2, 1)), capture=True)
    c1 = 0.5 * np.tanh(1.0)
    c2 = 0.5 * c1 + 0.5 * np.tanh(1.0)
    assert res.outputs[0].shape == (1, 2, 1)
    np.testing.assert_allclose(res.outputs[1], [[0.5 * np.tanh(c2) + c2]], rtol=1e-15)
    assert {"lstm", "lstm:1", "lstm:2"} <= set(res.layers)


def bn_model(**bn_config):
    bn = dict(axis=-1, momentum=0.9, epsilon=0.0, center=True, scale=True, renorm=False)
    bn.update(bn_config)
    return model(
        [input_layer("x", (2,)), layer("BatchNormalization", "bn", ([tensor("x")], {}), **bn)],
        ["x", 0, 0],
        ["bn", 0, 0],
    )


BN_WEIGHTS = {
    "bn/gamma": np.ones(2),
    "bn/beta": np.zeros(2),
    "bn/moving_mean": np.zeros(2),
    "bn/moving_variance": np.ones(2),
}


def test_bn_training_reports_updates_and_frozen_bn_does_not():
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    res = evaluate(bn_model(), BN_WEIGHTS, x, training=True)
    np.testing.assert_array_equal(res.outputs[0], [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(res.updated["bn/moving_variance"], [1.0, 10.9], rtol=1e-15)
    assert set(res.updated) == {"bn/moving_mean", "bn/moving_variance"}
    frozen = evaluate(bn_model(trainable=False), BN_WEIGHTS, x, training=True)
    np.testing.assert_array_equal(frozen.outputs[0], x)
    assert frozen.updated == {} and evaluate(bn_model(), BN_WEIGHTS, x).updated == {}


def test_bn_without_center_and_scale_reads_no_gamma_beta():
    w = {k: v for k, v in BN_WEIGHTS.items() if "moving" in k}
    y = evaluate(bn_model(center=False, scale=False), w, np.array([[2.0, 3.0]])).outputs[0]
    np.testing.assert_array_equal(y, [[2.0, 3.0]])


def test_custom_layers():
    cfg = model(
        [
            input_layer("x", (2,)),
            input_layer("flag", (1,)),
            layer("BranchSelect", "select", ([[tensor("x"), tensor("flag")]], {}), units=1),
            layer("ElementwiseScale", "scale", ([tensor("select")], {})),
        ],
        [["x", 0, 0], ["flag", 0, 0]],
        ["scale", 0, 0],
    )
    w = {
        "select/branch_a/kernel": np.array([[1.0], [0.0]]),
        "select/branch_a/bias": np.zeros(1),
        "select/branch_b/kernel": np.array([[0.0], [1.0]]),
        "select/branch_b/bias": np.zeros(1),
        "scale/scale": np.array([10.0]),
    }
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    # mean(flag) > 0.5 picks branch_a; exactly 0.5 does not.
    assert evaluate(cfg, w, [x, np.array([[1.0], [0.2]])]).outputs[0].ravel().tolist() == [10.0, 30.0]
    assert evaluate(cfg, w, [x, np.array([[1.0], [0.0]])]).outputs[0].ravel().tolist() == [20.0, 40.0]


# ------------------------------------------------------------------ errors, never guesses


def one_layer(class_name, weights=None, shape=(4, 4, 2), kwargs=None, **config):
    cfg = model(
        [input_layer("x", shape), layer(class_name, "l", ([tensor("x")], kwargs or {}), **config)],
        ["x", 0, 0],
        ["l", 0, 0],
    )
    return lambda **kw: evaluate(cfg, weights or {}, np.zeros((1, *shape)), **kw)


CONV = dict(
    filters=1,
    kernel_size=[1, 1],
    strides=[1, 1],
    padding="valid",
    data_format="channels_last",
    dilation_rate=[1, 1],
    groups=1,
    activation="linear",
    use_bias=False,
)
CONV_W = {"l/kernel": np.ones((1, 1, 2, 1))}


@pytest.mark.parametrize(
    "run,match",
    [
        (
            one_layer("RMSNormalization"),
            r"layer type 'RMSNormalization' \(layer 'l'\); add one in keras_parity/reference/layers.py",
        ),
        (one_layer("Conv2D", CONV_W, **{**CONV, "data_format": "channels_first"}), "data_format"),
        (one_layer("Conv2D", CONV_W, **{**CONV, "padding": "causal"}), "padding='causal'.*layer 'l'"),
        (one_layer("Activation", kwargs={"mask": tensor("x")}, activation="relu"), "masks"),
        (one_layer("Activation", activation="threshold"), "activation 'threshold'.*layer 'l'"),
        (one_layer("BatchNormalization", BN_WEIGHTS, axis=1), "last axis"),
        (one_layer("LSTM", shape=(3, 1), go_backwards=True), "go_backwards"),
        (one_layer("Dense", units=1, quantization_config={"mode": "int8"}), "quantization_config"),
    ],
)
def test_unsupported_raises(run, match):
    with pytest.raises(UnsupportedLayer, match=match):
        run()


def test_lstm_dropout_only_refused_in_training():
    w = {
        "l/lstm_cell/kernel": np.zeros((1, 4)),
        "l/lstm_cell/recurrent_kernel": np.zeros((1, 4)),
        "l/lstm_cell/bias": np.zeros(4),
    }
    run = one_layer("LSTM", w, shape=(3, 1), units=1, dropout=0.5)
    assert run().outputs[0].shape == (1, 1)
    with pytest.raises(UnsupportedLayer, match="dropout"):
        run(training=True)


def test_weight_and_shape_mistakes_raise():
    with pytest.raises(KeyError, match="l/kernel"):
        one_layer("Conv2D", {}, **CONV)()
    with pytest.raises(ValueError, match="not used.*stray"):
        one_layer("Conv2D", {**CONV_W, "stray/kernel": np.ones(1)}, **CONV)()
    cfg = model(
        [input_layer("x", (3,)), layer("Activation", "l", ([tensor("x")], {}), activation="relu")],
        ["x", 0, 0],
        ["l", 0, 0],
    )
    with pytest.raises(ValueError, match="input 'x'"):
        evaluate(cfg, {}, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="inputs are"):
        evaluate(cfg, {}, {"y": np.zeros((2, 3))})


def test_average_pooling_same_divides_edge_windows_by_the_pixels_they_cover():
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)  # 1 2 3 4 5
    # pool 2, stride 2, 'same': windows [1 2] [3 4] [5 + padding]: the last mean is 5, not 2.5
    assert L.avg_pool(x, (2,), (2,), "same").ravel().tolist() == [1.5, 3.5, 5.0]
    assert L.avg_pool(x, (2,), (2,), "valid").ravel().tolist() == [1.5, 3.5]


def test_depthwise_convolution_keeps_each_channel_to_itself_in_keras_order():
    x = np.zeros((1, 3, 3, 2))
    x[0, 1, 1] = [1.0, 10.0]  # one pixel per channel
    kernel = np.zeros((3, 3, 2, 2))  # (kh, kw, in, multiplier)
    kernel[1, 1] = [[1.0, 2.0], [3.0, 4.0]]
    y = L.depthwise_conv(x, kernel, padding="valid")
    # output channel c * multiplier + m: channel 0 -> 1, 2; channel 1 -> 30, 40
    assert y.ravel().tolist() == [1.0, 2.0, 30.0, 40.0]


def test_erf_and_exact_gelu_by_hand_and_their_derivative():
    import math

    import autograd

    assert L.erf(np.array([0.0, 1.0])).tolist() == [0.0, math.erf(1.0)]
    x = np.array([-2.0, -0.5, 0.0, 0.7, 3.0])
    assert np.allclose(L.gelu(x), 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x])), rtol=1e-15)
    slope = autograd.elementwise_grad(L.gelu)(x)
    h = 1e-6
    assert np.allclose(slope, (L.gelu(x + h) - L.gelu(x - h)) / (2 * h), rtol=1e-7, atol=1e-9)

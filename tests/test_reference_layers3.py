"""The float64 reference's further layers (the remaining activations and their operators,
UnitNormalization, 3-d convolution and pooling, transposed convolutions, Attention, nested
functional models), each against Keras itself on TensorFlow in float64, as in
test_reference_more_layers.py, with hand-checkable values where they are natural."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from test_reference_more_layers import _check, _gradient_meets_central_differences, _model, float64_tensorflow  # noqa: E402, F401

from keras_parity.reference import UnsupportedLayer, evaluate  # noqa: E402
from keras_parity.reference import ops as ref  # noqa: E402
from keras_parity.run.varpaths import variable_paths, weights_by_path  # noqa: E402

L, K = keras.layers, keras.ops

NEW_ACTIVATIONS = [
    "celu",
    "glu",
    "hard_tanh",
    "hard_shrink",
    "soft_shrink",
    "tanh_shrink",
    "log_sigmoid",
    "sparse_plus",
    "sparse_sigmoid",
    "squareplus",
]  # fmt: skip (sparsemax: see the Keras finding below)


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_the_remaining_activations_meet_keras_in_float64(name):
    # glu halves its axis, which Dense's declared output shape does not know: the model's output
    inner = None if name == "glu" else name
    _check([(6, 5)], lambda x: L.Activation(name)(L.Dense(8, activation=inner)(x)))


def test_the_remaining_activations_by_hand():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    act = ref.ACTIVATIONS
    assert np.array_equal(act["hard_tanh"](x), [-1, -1, -0.5, 0, 0.5, 1, 1])
    assert np.array_equal(act["hard_shrink"](x), [-2, -1, 0, 0, 0, 1, 2])
    assert np.array_equal(act["soft_shrink"](x), [-1.5, -0.5, 0, 0, 0, 0.5, 1.5])
    assert np.array_equal(act["sparse_plus"](x), [0, 0, 0.0625, 0.25, 0.5625, 1, 2])
    assert np.array_equal(act["sparse_sigmoid"](x), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    assert np.array_equal(act["squareplus"](np.array([0.0, 1.5])), [1.0, 2.0])  # (x + sqrt(x^2 + 4)) / 2
    assert np.allclose(act["celu"](x), np.where(x > 0, x, np.expm1(x)), rtol=1e-16, atol=0)
    assert np.allclose(act["glu"](np.array([[3.0, 0.0]])), [[1.5]])  # 3 * sigmoid(0)
    assert act["log_sigmoid"](np.array(-800.0)) == -800.0  # no log(0) in the far tail
    assert np.allclose(act["tanh_shrink"](np.array([1e-3])), [1e-9 / 3], rtol=1e-6)


NEW_OPERATORS = {
    "unary": lambda x: K.hard_tanh(x) + K.tanh_shrink(x) + K.log_sigmoid(x) + K.sparse_plus(x) + K.sparse_sigmoid(x),
    "parameters": lambda x: (
        K.celu(x, alpha=0.5) + K.squareplus(x, b=2) + K.hard_shrink(x, threshold=1.5) + K.soft_shrink(x, threshold=0.25)
    ),
    "threshold": lambda x: K.threshold(x, 0.25, -3.0),
    "glu_axis1": lambda x: K.glu(x, axis=1),
}


@pytest.mark.parametrize("name", NEW_OPERATORS)
def test_the_remaining_activation_operators_meet_keras_in_float64(name):
    _check([(3, 4, 6)], NEW_OPERATORS[name])


def test_sparsemax_is_the_projection_onto_the_simplex():
    """A Keras finding: keras.activations.sparsemax (every backend's implementation) subtracts
    tau = (sum of the cumulative sums over the support - 1) / k instead of (sum of the k largest
    - 1) / k; the two agree only where the support is one value. Its outputs then do not sum to
    one: [1, 0.9, -1] gives [0.05, 0, 0] instead of [0.55, 0.45, 0]. The reference is the
    sparsemax of Martins and Astudillo (2016), which Keras's docstring defines."""
    x = np.array([[1.0, 0.9, -1.0], [3.0, 0.0, -1.0]])
    got = ref.sparsemax(x)
    assert np.allclose(got, [[0.55, 0.45, 0.0], [1.0, 0.0, 0.0]], rtol=0, atol=1e-15)
    assert np.allclose(ref.sparsemax(x.T, axis=0), got.T, rtol=0, atol=0)
    z = np.random.default_rng(0).standard_normal((50, 6))
    assert np.allclose(ref.sparsemax(z).sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    model = _model([x.shape], lambda t: L.Activation("sparsemax")(t))
    want = np.asarray(model(x))
    assert np.allclose(want[1], got[1], rtol=0, atol=1e-15)  # one value in the support: they agree
    assert np.abs(want[0] - got[0]).max() == pytest.approx(0.5)  # [0.05, 0, 0] against [0.55, 0.45, 0]
    assert np.array_equal(evaluate(model.get_config(), {}, x).outputs[0], got)


VOLUMES = {  # 3-d convolution, pooling, resampling, padding and cropping; UnitNormalization
    "conv3d_same_strided": ((2, 5, 6, 4, 3), lambda x: L.Conv3D(4, (3, 2, 3), strides=(2, 1, 2), padding="same")(x)),
    "conv3d_dilated": ((2, 6, 5, 5, 2), lambda x: L.Conv3D(3, 2, dilation_rate=(2, 1, 2), activation="tanh")(x)),
    "global_avg_pool_3d": ((2, 3, 4, 5, 3), lambda x: L.GlobalAveragePooling3D()(x)),
    "global_max_pool_3d": ((2, 3, 4, 5, 3), lambda x: L.GlobalMaxPooling3D(keepdims=True)(x)),
    "upsampling_3d": ((2, 2, 3, 2, 2), lambda x: L.UpSampling3D((2, 1, 3))(x)),
    "zero_padding_3d": ((2, 2, 3, 2, 2), lambda x: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))(x)),
    "cropping_3d": ((2, 5, 6, 4, 2), lambda x: L.Cropping3D(((1, 0), (2, 1), (0, 1)))(x)),
    "unit_norm": ((3, 4, 6), lambda x: L.UnitNormalization()(x)),
    "unit_norm_axes": ((3, 4, 6), lambda x: L.UnitNormalization(axis=[1, 2])(L.Dense(5)(x))),
}


@pytest.mark.parametrize("name", VOLUMES)
def test_volume_layers_and_unit_normalization_meet_keras_in_float64(name):
    shape, build = VOLUMES[name]
    _check([shape], build)


POOLS_3D = {
    "max_pool_3d_same": lambda: L.MaxPooling3D(2, padding="same"),
    "max_pool_3d_strided": lambda: L.MaxPooling3D((3, 2, 2), strides=(1, 2, 1)),
    "avg_pool_3d_valid": lambda: L.AveragePooling3D((3, 2, 2), strides=(1, 2, 1)),
    "avg_pool_3d_same": lambda: L.AveragePooling3D(3, strides=2, padding="same"),
}


@pytest.mark.parametrize("name", POOLS_3D)
def test_3d_pooling_meets_keras(name):
    """TensorFlow has no float64 kernel for 3-d pooling (MaxPool3D takes float32 at most,
    AvgPool3D in float64 runs under XLA only). Average pooling meets Keras in float64 under XLA;
    max pooling meets Keras in float32 exactly, on float32 values (a max only picks one)."""
    import tensorflow as tf

    x = np.random.default_rng(0).standard_normal((2, 6, 5, 5, 3)).astype(np.float32).astype(np.float64)
    model = _model([x.shape], lambda t: POOLS_3D[name]()(t))
    if name.startswith("max"):
        pool = POOLS_3D[name]()
        pool.dtype_policy = "float32"
        want, tol = np.asarray(pool(x.astype(np.float32))).astype(np.float64), 0.0
    else:
        want, tol = np.asarray(tf.function(model, jit_compile=True)(x)), 1e-15
        assert want.dtype == np.float64
    got = evaluate(model.get_config(), {}, x).outputs[0]
    assert got.shape == want.shape and np.max(np.abs(got - want)) <= tol * np.max(np.abs(want))


def test_unit_normalization_by_hand_and_its_epsilon():
    """1/||x|| is bounded by 1/epsilon, epsilon 1e-12: a norm below it scales by 1e12 instead."""
    model = _model([(3, 2)], lambda t: L.UnitNormalization()(t))
    x = np.array([[3.0, 4.0], [0.0, 0.0], [3e-14, 4e-14]])
    got = evaluate(model.get_config(), {}, x).outputs[0]
    assert np.allclose(got, [[0.6, 0.8], [0.0, 0.0], [0.03, 0.04]], rtol=1e-15, atol=0)
    assert np.allclose(np.asarray(model(x)), got, rtol=1e-15, atol=0)


TRANSPOSED = {  # Keras's output sizes: valid (in-1)*s + max(k, s), same in*s, or output_padding's
    "conv1d_t_valid": ((2, 5, 3), lambda x: L.Conv1DTranspose(4, 3)(x)),
    "conv1d_t_valid_stride_above_kernel": ((2, 5, 3), lambda x: L.Conv1DTranspose(2, 2, strides=3)(x)),
    "conv1d_t_same_strided": ((2, 5, 3), lambda x: L.Conv1DTranspose(2, 4, strides=2, padding="same")(x)),
    "conv2d_t_valid_strided": ((2, 4, 5, 3), lambda x: L.Conv2DTranspose(3, (3, 2), strides=(2, 3))(x)),
    "conv2d_t_same": ((2, 4, 5, 3), lambda x: L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu")(x)),
    "conv2d_t_same_even_kernel": ((2, 4, 4, 2), lambda x: L.Conv2DTranspose(2, 4, strides=2, padding="same")(x)),
    "conv2d_t_output_padding_valid": (
        (2, 4, 4, 2),
        lambda x: L.Conv2DTranspose(3, 3, strides=2, output_padding=(1, 0), use_bias=False)(x),
    ),
    "conv2d_t_output_padding_same": (
        (2, 4, 5, 2),
        lambda x: L.Conv2DTranspose(2, (3, 4), strides=(3, 2), padding="same", output_padding=(1, 1))(x),
    ),
    "conv3d_t_same": ((2, 3, 4, 3, 2), lambda x: L.Conv3DTranspose(2, (2, 3, 2), strides=2, padding="same")(x)),
    "conv3d_t_valid": ((2, 3, 3, 2, 2), lambda x: L.Conv3DTranspose(3, 2, strides=(1, 2, 3))(x)),
}


@pytest.mark.parametrize("name", TRANSPOSED)
def test_transposed_convolutions_meet_keras_in_float64(name):
    shape, build = TRANSPOSED[name]
    _check([shape], build)


def test_a_transposed_convolution_by_hand():
    """Stride 2, kernel [1, 10, 100]: each input value spreads over three outputs, overlapping
    by one; 'same' keeps in*stride of them, the one left over cut at the end (TensorFlow pads
    an odd pixel after)."""
    from keras_parity.reference.convolution import conv_transpose

    x, kernel = np.array([1.0, 2.0]).reshape(1, 2, 1), np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)
    assert conv_transpose(x, kernel, strides=2).ravel().tolist() == [1, 10, 102, 20, 200]
    assert conv_transpose(x, kernel, strides=2, output_padding=1).ravel().tolist() == [1, 10, 102, 20, 200, 0]
    assert conv_transpose(x, kernel, strides=2, padding="same").ravel().tolist() == [1, 10, 102, 20]
    # Dilated: TensorFlow's CPU kernels refuse it, so it is refused here by name, unchecked.
    model = _model([(2, 6, 3)], lambda t: L.Conv1DTranspose(2, 3, dilation_rate=2, name="up")(t))
    with pytest.raises(UnsupportedLayer, match="dilation_rate=.*layer 'up'"):
        evaluate(model.get_config(), weights_by_path(model), np.zeros((2, 6, 3)))


QV = [(2, 4, 5), (2, 6, 5)]
ATTENTION = {  # keras.layers.Attention on [query, value] or [query, value, key]
    "dot": (QV, lambda x: L.Attention()(x)),
    "dot_scaled_key": ([*QV, (2, 6, 5)], lambda x: L.Attention(use_scale=True)(x)),
    "concat": (QV, lambda x: L.Attention(score_mode="concat")(x)),
    "concat_scaled_causal": (QV, lambda x: L.Attention(use_scale=True, score_mode="concat")(x, use_causal_mask=True)),
    "self_causal": ([(2, 5, 3)], lambda x: L.Attention(use_scale=True)([x, x], use_causal_mask=True)),
    "dropout_at_inference": (QV, lambda x: L.Attention(dropout=0.4)(x)),
}


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_meets_keras_in_float64(name):
    shapes, build = ATTENTION[name]
    _check(shapes, build)


def test_attention_with_query_and_value_masks_meets_keras_in_float64():
    rng = np.random.default_rng(4)
    q, v = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 6, 5))
    q_mask, v_mask = rng.random((2, 4)) > 0.4, rng.random((2, 6)) > 0.4
    v_mask[1] = False  # every key masked: Keras lowers scores by 1e9, so the row still averages
    inputs = [keras.Input(a.shape[1:]) for a in (q, v)] + [
        keras.Input(m.shape[1:], dtype="bool") for m in (q_mask, v_mask)
    ]
    for causal in (False, True):
        out = L.Attention(use_scale=True)(inputs[:2], mask=inputs[2:], use_causal_mask=causal)
        model = keras.Model(inputs, out)
        model.set_weights([np.array(0.7)])
        want = np.asarray(model([q, v, q_mask, v_mask]))
        got = evaluate(model.get_config(), {w.path: np.asarray(w) for w in model.weights}, [q, v, q_mask, v_mask])
        assert np.max(np.abs(got.outputs[0] - want)) <= 1e-12 * np.max(np.abs(want))
        assert np.all(want[~q_mask] == 0) and np.abs(want[1]).max() > 0


def test_attention_by_hand_and_what_it_refuses():
    # A zero query scores every key 0: the output is the plain mean of the values.
    model = _model([(1, 1, 2), (1, 3, 2)], lambda x: L.Attention()(x))
    v = np.array([[[1.0, 0.0], [2.0, 3.0], [6.0, 3.0]]])
    got = evaluate(model.get_config(), {}, [np.zeros((1, 1, 2)), v]).outputs[0]
    assert np.allclose(got, [[[3.0, 2.0]]], rtol=1e-15, atol=0)
    model = _model(QV, lambda x: L.Attention()(x, return_attention_scores=True)[0])
    with pytest.raises(UnsupportedLayer, match="return_attention_scores=True"):
        evaluate(model.get_config(), {}, [np.zeros(s) for s in QV])


def _blocks():
    """A one-input block and a two-input one, built on their own: their layers' weights are
    named '<layer>/<leaf>', with no prefix of the model that holds them."""
    x = keras.Input((5,))
    block = keras.Model(x, L.Dense(5, name="inner_out")(L.Dense(6, activation="tanh")(x)), name="block")
    a, b = keras.Input((5,)), keras.Input((5,))
    pair = keras.Model([a, b], L.Concatenate()([L.Dense(3)(a), b * 2.0]), name="pair")
    return block, pair


def test_nested_functional_models_meet_keras_in_float64():
    block, pair = _blocks()

    def build(xs):
        x, y = xs
        shared = block(block(x))  # the same weights, twice in a row
        return L.Dense(2)(pair([shared, block(y)]))

    _check([(3, 5), (3, 5)], build)
    model = _model([(3, 5), (3, 5)], build)
    # Keras names the nested model's kernel 'inner_out/kernel'; the layer tree, 'block/inner_out/kernel'.
    assert any(v.path == "inner_out/kernel" for v in model.weights)
    assert "block/inner_out/kernel" in variable_paths(model)
    # The model's output the nested model's: Keras numbers its node from 1 in output_layers.
    last = _blocks()[0]
    model = _model([(3, 5)], lambda t: last(L.Dense(5)(t)))
    assert model.get_config()["output_layers"] == [last.name, 1, 0]
    _check([(3, 5)], lambda t: last(last(t)))


def test_a_nested_functional_model_names_the_layers_it_lacks():
    from keras_parity.reference import reference_gaps

    x = keras.Input((4,))
    inner = keras.Model(x, L.RMSNormalization()(L.Dense(4)(x)), name="inner")
    model = _model([(2, 4)], lambda t: L.Dense(2)(inner(t)))
    assert reference_gaps(model.get_config()) == ["RMSNormalization"]
    assert reference_gaps(_model([(2, 5)], lambda t: _blocks()[0](t)).get_config()) == []


def test_the_training_reference_differentiates_through_these_layers():
    """autograd's gradient through the new layers with weights (transposed and 3-d convolution,
    Attention's scale and concat weight, a nested functional model) and the new activations
    equals central differences of the forward, as for the layers before them."""

    block = _blocks()[0]

    def build(x):
        y = L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="celu")(x)
        y = L.Conv3D(2, 2, activation="squareplus")(L.Reshape((2, 4, 4, 2))(L.Conv2D(4, 2, strides=2)(y)))
        y = L.Reshape((4, 2))(L.AveragePooling3D(2, padding="same")(y))
        y = L.Conv1DTranspose(5, 2, strides=2, activation="log_sigmoid")(y)
        a = L.Attention(use_scale=True, score_mode="concat")([y, y], use_causal_mask=True)
        b = L.Attention(use_scale=True)([a, y])
        return block(L.UnitNormalization()(L.GlobalAveragePooling1D()(K.glu(L.Concatenate()([a, b])))))

    weights = _gradient_meets_central_differences(_model([(2, 4, 4, 2)], build), (2, 4, 4, 2))
    assert {"scale", "concat_score_weight", "inner_out/kernel"} <= {k.split("/", 1)[-1] for k in weights} | set(weights)

"""Seeded NumPy weights and inputs: deterministic, scaled, checksummed, never from a backend."""

import numpy as np
import pytest

from keras_parity.registry.spec import Inp
from keras_parity.run.weights import checksum, generate_inputs, generate_weights

SPECS = [("d/kernel", (64, 32)), ("d/bias", (32,)), ("bn/moving_variance", (32,)), ("c/kernel", (3, 3, 16, 8))]


def test_same_seed_same_bits_and_order_independent():
    a = generate_weights(SPECS, 7, "m")
    b = generate_weights(SPECS, 7, "m")
    assert all(x.dtype == np.float32 and np.array_equal(x, y) for x, y in zip(a, b))
    # Each variable has its own stream: reordering the list does not change a variable.
    c = generate_weights(SPECS[::-1], 7, "m")[::-1]
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], generate_weights(SPECS, 8, "m")[0])


def test_scales_keep_activations_sane():
    k, b, var, conv = generate_weights(SPECS, 1, "m")
    assert abs(k.std() * np.sqrt(64) - 1.0) < 0.1  # LeCun for Dense
    assert abs(conv.std() * np.sqrt(3 * 3 * 16 / 2) - 1.0) < 0.1  # He for convolutions
    assert np.abs(b).max() <= 0.1 and 0.8 <= var.min() and var.max() <= 1.2


def test_unknown_variable_gets_a_clear_error():
    with pytest.raises(ValueError, match="no weight rule for variable 'x/alpha'.*keras_parity/run/weights.py"):
        generate_weights([("x/alpha", (3,))], 1, "m")


def test_inputs_and_checksums():
    spec = {"x": Inp((2, 3)), "flag": Inp((2, 1), fill=1.0)}
    x = generate_inputs(spec, 5, "m")
    assert x["flag"].tolist() == [[1.0], [1.0]] and x["x"].dtype == np.float32
    assert -1 <= x["x"].min() and x["x"].max() <= 1
    assert checksum(x) == checksum(generate_inputs(spec, 5, "m"))
    y = dict(x)
    y["x"] = np.nextafter(x["x"], 2, dtype=np.float32)
    assert checksum(x) != checksum(y)


def test_tolerance_overrides_pick_the_most_specific_match():
    from keras_parity.registry.spec import ModelSpec, Tol

    base, gpu, jax_gpu = Tol(1, 1, 1, "base"), Tol(2, 2, 2, "gpu"), Tol(3, 3, 3, "jax gpu")
    spec = ModelSpec("m", 1, (), base, tol_overrides={("*", "gpu", "*"): gpu, ("jax", "gpu", "float32"): jax_gpu})
    assert spec.tolerance("torch", "cpu") is base
    assert spec.tolerance("torch", "gpu") is gpu
    assert spec.tolerance("jax", "gpu") is jax_gpu
    assert spec.tolerance("jax", "gpu", "float16") is gpu

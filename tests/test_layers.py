"""Layer sketches (golden/sketch.py) and judging every layer against its own noise (judge/layers.py)."""

import numpy as np

from keras_parity.golden.sketch import SIZE, sketch
from keras_parity.judge.layers import judge_layers
from keras_parity.judge.numerics import rel_l2
from keras_parity.registry.spec import Tol


def _rng():
    return np.random.default_rng(7)


def test_a_sketch_is_linear_so_a_scaled_layer_reads_its_scale_exactly():
    a = _rng().standard_normal((2, 56, 56, 64))
    assert sketch(a).shape == (SIZE,)
    assert np.allclose(sketch(a * 1.00002), sketch(a) * 1.00002, rtol=1e-12)
    assert np.isclose(rel_l2(sketch(a * 1.00002), sketch(a)), 2e-5, rtol=1e-6)


def test_a_sketch_keeps_the_size_of_noise_and_of_a_change_at_a_few_positions():
    rng = _rng()
    a = rng.standard_normal((2, 30, 30, 8))
    noisy = a + a * rng.standard_normal(a.shape) * 1e-7  # rounding-like, independent per value
    assert 0.8 < rel_l2(sketch(noisy), sketch(a)) / rel_l2(noisy, a) < 1.25
    border = a.copy()
    border[:, 0, :, :] += 1e-3  # one row of the image: what a changed padding touches
    assert 0.8 < rel_l2(sketch(border), sketch(a)) / rel_l2(border, a) < 1.25


def test_the_first_layer_beyond_its_tolerance_is_named_with_how_many_follow():
    rng = _rng()
    # in a golden's alphabetical key order, not the graph's
    want = {n: rng.standard_normal(SIZE) for n in ("bn", "conv", "out", "relu")}
    tols = {n: Tol(1e-6, 0.0, 0.0, "10x its noise") for n in want}
    got = {n: v * (1 + 1e-7) for n, v in want.items()}
    assert judge_layers(got, want, tols) is None
    got.update({n: want[n] * (1 + 1e-5) for n in ("bn", "relu", "out")})
    found = judge_layers(got, want, tols, order=["x", "conv", "bn", "relu", "out"])
    assert found.kind == "layers" and found.message.startswith("layer 'bn': relative L2 error 1.00e-05 > 1.0e-06")
    assert found.message.endswith("; 2 later layers too")
    assert judge_layers({}, want, tols) is None  # no sketches (a twin, a user model): nothing judged
    assert judge_layers(got, want, {}) is None  # nothing measured (a GPU, a policy)
    got["conv"] = np.full(SIZE, np.nan)
    assert judge_layers(got, want, tols, ["conv", "bn"]).message.startswith("layer 'conv'")  # NaN never passes

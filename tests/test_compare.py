"""compare(): keys, shape, dtype, then values; ULP distance; top-5; NaN/Inf."""

import numpy as np
import pytest

from keras_parity.judge.compare import compare
from keras_parity.judge.numerics import ulp_distance
from keras_parity.registry.spec import Tol

TOL = Tol(rel_l2=1e-6, atol=1e-6, rtol=1e-5, why="test")


def ref_and_out(n=20, seed=0):
    ref = np.random.default_rng(seed).standard_normal((4, n))
    return ref, ref.astype(np.float32)


def test_float32_rounding_passes_and_reports_metrics():
    ref, out = ref_and_out()
    c = compare({"output": out}, {"output": ref}, TOL)
    assert c.status == "pass", c.problems
    m = c.outputs["output"]
    assert 0 < m.max_abs < 1e-6 and 0 < m.rel_l2 < 1e-7 and m.nan == m.inf == 0
    assert c.snapshot == "missing"


@pytest.mark.parametrize(
    "obtained, expect",
    [
        ({"other": np.zeros((4, 20), np.float32)}, "output keys differ"),
        ({"output": np.zeros((4, 21), np.float32)}, "shape"),
        ({"output": np.zeros((4, 20), np.float64)}, "dtype"),
    ],
)
def test_structure_is_checked_before_values(obtained, expect):
    ref, _ = ref_and_out()
    c = compare(obtained, {"output": ref}, TOL)
    assert c.status == "fail" and expect in c.problems[0]


def test_semantic_difference_fails_with_worst_index():
    ref, out = ref_and_out()
    out = out.copy()
    out[2, 7] += 1e-3
    c = compare({"output": out}, {"output": ref}, TOL)
    assert c.status == "fail"
    assert c.outputs["output"].worst_index == [2, 7]
    assert "relative L2" in c.problems[0]


def test_elementwise_bound_catches_a_small_local_error():
    ref, out = ref_and_out(n=2000)
    out = out.copy()
    out[0, 0] = ref[0, 0] + 3e-5 + 1e-5 * abs(ref[0, 0])  # global L2 stays tiny
    c = compare({"output": out}, {"output": ref}, Tol(rel_l2=1e-4, atol=1e-5, rtol=1e-5, why=""))
    assert c.status == "fail" and "1 of 8000 values" in c.problems[0]


def test_nan_and_inf_are_counted_and_fail():
    ref, out = ref_and_out()
    out = out.copy()
    out[0, 0], out[1, 1] = np.nan, np.inf
    c = compare({"output": out}, {"output": ref}, TOL)
    assert c.status == "fail" and c.outputs["output"].nan == 1 and c.outputs["output"].inf == 1


def test_ulp_distance_and_snapshot_status():
    a = np.array([1.0, -1.0, 0.0, 3.5], np.float32)
    b = np.nextafter(a, np.float32(np.inf))
    assert ulp_distance(a, a).tolist() == [0, 0, 0, 0]
    assert ulp_distance(a, b).tolist() == [1, 1, 1, 1]
    assert ulp_distance(np.float32([0.0]), np.float32([-0.0])).tolist() == [0]
    ref = a.astype(np.float64)
    c = compare({"output": a}, {"output": ref}, TOL, snapshot={"output": a.copy()})
    assert c.snapshot == "identical" and c.outputs["output"].ulp_max == 0
    c = compare({"output": a}, {"output": ref}, TOL, snapshot={"output": b})
    assert c.snapshot == "changed" and c.outputs["output"].ulp_max == 1 and c.status == "pass"


def test_top5_agreement_for_classifiers():
    ref = np.tile(np.arange(10.0), (2, 1))
    out = ref.astype(np.float32).copy()
    out[1, 9], out[1, 0] = 0.0, 9.0  # sample 1 loses one of its top five
    c = compare({"output": out}, {"output": ref}, Tol(1.0, 100.0, 0.0, ""), classifier=True)
    assert c.outputs["output"].top5 == pytest.approx((1.0 + 0.8) / 2)


def test_nothing_to_compare_is_an_error_not_a_pass():
    c = compare({}, {}, TOL)
    assert c.status == "error" and "nothing to compare" in c.problems[0] and "nox -s golden" in c.problems[0]

"""Float64 goldens change only when something changed: a regeneration on another CPU (other
BLAS kernels) keeps every array that agrees to float64 rounding byte for byte."""

import numpy as np
import pytest

from keras_parity import golden
from keras_parity.golden.regen import _settled, reference_outputs
from keras_parity.golden.settle import ROUNDING, settle
from keras_parity.reference import evaluate
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run.weights import seeded_case

BUILTIN = builtin_registry()


def _arrays(rng):
    return {
        "logits/output": rng.standard_normal((2, 5)),
        "train_grad/loss": np.array([0.7]),
        # rounding residue: a bias gradient BatchNormalization cancels
        "train_grad/grad/dense/bias": rng.standard_normal(4) * 1e-17,
        "train_grad/grad/dense/kernel": rng.standard_normal((3, 4)) * 0.1,
    }


def test_arrays_within_float64_rounding_keep_their_old_bytes(tmp_path):
    rng = np.random.default_rng(0)
    old = _arrays(rng)
    path = tmp_path / "reference.npz"
    golden.write_npz(path, old)
    before = path.read_bytes()
    # What another CPU's BLAS gives: a few ulps everywhere, and the residue 100% different.
    new = {k: v * (1 + 3e-15) for k, v in old.items()}
    new["train_grad/grad/dense/bias"] = rng.standard_normal(4) * 1e-17
    lines = []
    golden.write_npz(path, _settled(path, new, "m reference", lines.append))
    assert path.read_bytes() == before
    assert len(lines) == 1 and "4 arrays agree to float64 rounding" in lines[0], lines


def test_a_change_beyond_rounding_rewrites_only_that_array_and_says_how_much(tmp_path):
    rng = np.random.default_rng(1)
    old = _arrays(rng)
    path = tmp_path / "reference.npz"
    golden.write_npz(path, old)
    new = {k: v.copy() for k, v in old.items()}
    new["logits/output"][1, 2] += 1e-6  # far below float32's noise, far above float64's
    lines = []
    written = _settled(path, new, "m reference", lines.append)
    assert written["logits/output"] is new["logits/output"]
    assert all(np.array_equal(written[k], old[k]) for k in old if k != "logits/output")
    assert any(line.startswith("  m reference: logits/output: max abs change 1.00e-06") for line in lines), lines


def test_shape_dtype_nan_and_new_keys_are_never_settled():
    old = {"a/x": np.zeros(3), "a/y": np.array([1.0, np.nan]), "a/z": np.ones(2)}
    new = {
        "a/x": np.zeros(4),  # shape
        "a/y": np.array([1.0, 2.0]),  # a NaN that became a number
        "a/z": np.ones(2, dtype=np.float32),  # dtype
        "a/w": np.ones(1),  # new
    }
    assert settle(old, new).moved == ("a/w", "a/x", "a/y", "a/z")
    assert settle(old, {"a/x": np.zeros(3) + ROUNDING * 0.5}).kept == 1


@pytest.mark.parametrize("model", ["linear", "cnn", "bn_mlp", "lstm"])
def test_the_checked_in_references_are_reproduced_here_to_float64_rounding(model):
    """Run on any CPU (`nox -s tests -- --foreign-cpu` emulates another one): `nox -s golden` with
    nothing changed leaves reference.npz and layers.npz byte for byte as they are."""
    spec, graph = BUILTIN[model], golden.read_json(golden.graph_path(model))
    meta = golden.read_json(golden.reference_path(model).with_suffix(".json"))
    for case in spec.cases:  # the runner reports the output shape; graph.json does not keep it
        b = graph[case.builder]
        weights, inputs = seeded_case(spec, case, b)
        b.setdefault("output_shape", list(evaluate(b["config"], weights, inputs).outputs[0].shape))
    ref, layers = reference_outputs(spec, graph, meta.get("training"))
    for path, new in ((golden.reference_path(model), ref), (golden.layers_path(model), layers)):
        settled = settle(golden.read_npz(path), new)
        assert settled.moved == (), f"{path.name}: moved beyond float64 rounding: {settled.moved}"
        assert golden.npz_bytes(settled.arrays) == path.read_bytes()

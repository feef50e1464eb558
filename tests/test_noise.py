"""Tolerances from measured noise: what a measurement keeps, and how a tolerance is made of it."""

import numpy as np
import pytest

from keras_parity.calibrate.noise import U32, cell_noise, merge
from keras_parity.errors import UsageError
from keras_parity.registry import noise
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run.modelio import case_paths

BUILTIN = builtin_registry()


def test_a_forward_cell_keeps_its_worst_error_floored_at_float32():
    ref = np.array([[1.0, -2.0], [4.0, 0.5]])
    exact = cell_noise({"output": ref.astype(np.float32)}, {"output": ref}, training=False)
    assert exact == {"output": (U32, U32 * 4.0)}  # nothing quieter than float32 can tell
    moved = ref + np.array([[0.0, 0.0], [1e-3, 0.0]])
    (rel, worst) = cell_noise({"output": moved.astype(np.float32)}, {"output": ref}, training=False)["output"]
    assert np.isclose(rel, 1e-3 / np.linalg.norm(ref), rtol=1e-3) and np.isclose(worst, 1e-3, rtol=1e-3)


def test_a_training_array_of_rounding_residue_is_measured_on_its_groups_scale():
    ref = {"grad/a/kernel": np.full(4, 2.0), "grad/a/bias": np.zeros(2)}
    got = {"grad/a/kernel": np.full(4, 2.0, np.float32), "grad/a/bias": np.full(2, 1e-9, np.float32)}
    measured = cell_noise(got, ref, training=True)
    group_rms = np.sqrt(np.mean(np.r_[ref["grad/a/kernel"], ref["grad/a/bias"]] ** 2))
    assert np.isclose(measured["grad/a/bias"][0], 1e-9 / (1e-4 * group_rms), rtol=1e-3)  # not 1e-9 / 0


def test_a_cpu_float32_cell_gets_ten_times_its_noise_and_others_the_registrys_own():
    spec = BUILTIN["lstm"]
    case = spec.case("lstm")
    envelope = spec.noise["lstm/predict"]
    tol = spec.tolerance("jax", "cpu", "float32", case, "predict")
    assert tol.rel_l2 == noise.MARGIN * envelope["rel_l2"] and tol.atol == noise.MARGIN * envelope["atol"]
    assert "models/noise.json" in tol.why
    assert spec.tolerance("jax", "gpu", "float32", case, "predict") == spec.tol  # nothing measured on a GPU
    assert spec.tolerance("jax", "cpu", "mixed_float16", case, "predict").rel_l2 > tol.rel_l2
    grads = spec.array_tolerances(spec.case("train_grad"), "eager")
    assert grads and all(
        t.rel_l2 == noise.MARGIN * spec.noise[f"train_grad/eager/{k}"]["rel_l2"] for k, t in grads.items()
    )


def test_every_built_in_cell_has_its_noise_measured():
    """A case added to the registry without `nox -s noise` would fall back to a written tolerance."""
    for name in BUILTIN.builtin:
        spec = BUILTIN[name]
        for case in spec.cases:
            for backend in BACKENDS:
                for path in case_paths(case, backend):
                    assert f"{case.name}/{path}" in spec.noise, (name, case.name, path, "run `nox -s noise`")


def test_every_layer_of_every_built_in_forward_case_has_its_noise_and_its_golden_sketch():
    """Layer judging (judge/layers.py) covers each layer the float64 reference sketched."""
    from keras_parity import golden

    for name in BUILTIN.builtin:
        spec, sketches = BUILTIN[name], golden.read_npz(golden.layers_path(name))
        for case in spec.cases:
            if case.training or case.mode == "moving_stats":
                continue
            layers = golden.part(sketches, case.name)
            assert layers and set(spec.layer_tolerances(case)) == set(layers), (name, case.name, "run `nox -s noise`")
            assert spec.layer_tolerances(case, device="gpu") == {}  # nothing measured on a GPU


def _measured(platform, versions, cells):
    return {"measured": "2026-12-01", "margin": 10.0, "platform": platform, "versions": versions, "cells": cells}


def test_measuring_one_model_again_keeps_every_other_models_cells():
    """`noise --model resnet50`: its cells replaced, another model's kept to the bit; a cell
    measured 'here' on another machine than the file's says which one."""
    v = {"jax": {"jax": "0.10.2"}}
    old = _measured("cpu-a", v, {
        "linear/x/eager": {"rel_l2": 3.71816892563e-07, "atol": 1e-7, "worst": "tensorflow here"},
        "resnet50/logits/eager": {"rel_l2": 4e-07, "atol": 1e-6, "worst": "jax here"},
        "resnet50/gone/eager": {"rel_l2": 1e-07, "atol": 1e-7, "worst": "jax here"},
    })  # fmt: skip
    new = _measured("cpu-b", v, {
        "linear/x/eager": {"rel_l2": 3.7181689256e-07, "atol": 1e-7, "worst": "tensorflow here"},
        "resnet50/logits/eager": {"rel_l2": 5e-07, "atol": 2e-6, "worst": "torch here"},
        "resnet50/train_grad/eager": {"rel_l2": 1e-3, "atol": 0.07, "worst": "tensorflow on cpu-c"},
    })  # fmt: skip
    got = merge(old, new, ["resnet50"])
    assert got["cells"]["linear/x/eager"] == old["cells"]["linear/x/eager"]
    assert got["cells"]["resnet50/logits/eager"] == {"rel_l2": 5e-07, "atol": 2e-6, "worst": "torch on cpu-b"}
    assert got["cells"]["resnet50/train_grad/eager"]["worst"] == "tensorflow on cpu-c"
    assert "resnet50/gone/eager" not in got["cells"]  # a case that is no more
    assert got["platform"] == "cpu-a" and got["measured"] == new["measured"]
    with pytest.raises(UsageError, match="other releases"):
        merge(old, {**new, "versions": {"jax": {"jax": "0.11.2"}}}, ["resnet50"])

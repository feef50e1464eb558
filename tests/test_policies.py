"""Dtype policies: mixed_float16 and mixed_bfloat16 within tolerances derived from their unit
roundoff, float64 held to float64's, and a policy a model cannot run reported as unsupported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_parity.judge.evaluate import evaluate
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import POLICIES, POLICY_ULPS
from keras_parity.run import envs
from keras_parity.run.record import BackendRun, Provenance

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent


def test_policy_tolerances_follow_the_unit_roundoff():
    spec = BUILTIN["lstm"]
    assert spec.tolerance("jax", "cpu") == spec.tol  # float32: the registry's own
    for policy, u in POLICIES.items():
        if policy != "float32":
            tol = spec.tolerance("jax", "cpu", policy)
            assert tol.rel_l2 == POLICY_ULPS * u and f"{POLICY_ULPS} unit roundoffs of {policy}" in tol.why
    assert spec.tolerance("jax", "cpu", "mixed_bfloat16").rel_l2 > spec.tolerance("jax", "cpu", "mixed_float16").rel_l2


NO_HALF = "RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'"


def test_a_model_a_policy_cannot_run_is_unsupported_not_an_error():
    run = BackendRun("torch", provenance=Provenance(device="cpu"), errors={"lstm": NO_HALF})
    (cell,) = evaluate({"torch": run}, ["lstm"], BUILTIN, policy="mixed_float16")
    assert cell.status == "unsupported" and cell.policy == "mixed_float16"
    assert cell.problems == [f"unsupported under mixed_float16: {NO_HALF}"]
    (cell,) = evaluate({"torch": run}, ["lstm"], BUILTIN)  # under float32 it is an error
    assert cell.status == "error"


@pytest.mark.parametrize(
    "crash",
    ["ValueError: Input 0 of layer 'lstm' is incompatible", "RuntimeError: CUDA out of memory", "KeyError: 'kernel'"],
)
def test_a_crash_under_a_policy_that_is_no_dtype_limitation_is_an_error(crash):
    run = BackendRun("torch", provenance=Provenance(device="cpu"), errors={"lstm": crash})
    (cell,) = evaluate({"torch": run}, ["lstm"], BUILTIN, policy="mixed_bfloat16")
    assert cell.status == "error" and crash in cell.problems[0]


@pytest.mark.slow
def test_mixed_policies_pass_and_tensorflow_float64_meets_float64(tmp_path):
    env = {**os.environ, "KERAS_PARITY_ENVS": str(envs.env_root())}
    args = ["parity", "--policy", "mixed_float16", "--policy", "mixed_bfloat16", "--policy", "float64"]
    args += ["--model", "cnn", "--model", "lstm", "--out", str(tmp_path)]
    subprocess.run([sys.executable, "-m", "keras_parity", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    cells = json.loads((tmp_path / "parity.json").read_text())["cells"]
    by_policy = {p: [c for c in cells if c["policy"] == p] for p in POLICIES}
    # 4 forward cases: 2 paths on tensorflow and jax, 1 on torch; 3 training cases each on
    # every backend, except under mixed precision
    assert [len(by_policy[p]) for p in POLICIES] == [38, 38, 20, 20]
    for policy in ("mixed_float16", "mixed_bfloat16"):
        assert all(c["status"] == "pass" for c in by_policy[policy]), [
            c for c in by_policy[policy] if c["status"] != "pass"
        ]
    tf64 = [c for c in by_policy["float64"] if c["backend"] == "tensorflow"]
    exact = [c for c in tf64 if c["case"] not in ("train_sgd", "train_adam")]
    assert exact and all(c["status"] == "pass" for c in exact)
    assert all(o["rel_l2"] <= POLICY_ULPS * POLICIES["float64"] for c in exact for o in c["outputs"].values())
    # Keras's optimizer steps are not float64 throughout: the cells fail and say why
    steps = [c for c in tf64 if c["case"] in ("train_sgd", "train_adam")]
    assert len(steps) == 4 and all(c["status"] == "fail" for c in steps)
    assert all(any("casts momentum and Adam's betas through float32" in p for p in c["problems"]) for c in steps)
    xml = (tmp_path / "parity.xml").read_text()
    assert "[predict,mixed_bfloat16]" in xml

"""Failures that must surface: outputs that carry no information, and (with --strict-bits) any
moved bit against this platform's own snapshot."""

import json
import shutil

import numpy as np
import pytest
from helpers import cli

from keras_parity import golden
from keras_parity.judge.information import why_uninformative

RNG = np.random.default_rng(0)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "output, says",
    [
        (np.full((4, 10), 0.1), "every value is 0.1"),  # MobileNetV3Small(weights=None) on random inputs
        (np.tile(RNG.standard_normal((1, 6)), (4, 1)), "all 4 inputs give the same output"),
        (_softmax(RNG.standard_normal((4, 10)) * 1e3), "one-hot in every row"),
        (_softmax(RNG.standard_normal((4, 10)) * 1e-6), "uniform in every row"),
        (0.5 * (1 + np.tanh(RNG.standard_normal((4, 3)) * 1e3)), "every value at 0 or 1"),
    ],
)
def test_outputs_without_information_are_named(output, says):
    why = why_uninformative({"output": output})
    assert why is not None and why.startswith("output carries no information") and says in why


@pytest.mark.parametrize(
    "output",
    [
        RNG.standard_normal((4, 10)),
        _softmax(RNG.standard_normal((4, 10))),
        1 / (1 + np.exp(-RNG.standard_normal((4, 3)))),
    ],
)
def test_informative_outputs_pass(output):
    assert why_uninformative({"output": output}) is None


def test_every_built_in_forward_case_carries_information():
    for ref_file in sorted(golden.GOLDEN.glob("*/reference.npz")):
        ref = golden.read_npz(ref_file)
        for case in golden.children(ref):
            part = golden.part(ref, case)
            if not any(golden.head(k) in ("grad", "sgd", "adam", "loss") for k in part):
                assert why_uninformative(part) is None, (ref_file.parent.name, case)


SATURATED = """import keras


def build():
    x = keras.Input((5,), name="x")
    y = keras.layers.Dense(10, name="d")(x)
    y = keras.layers.Rescaling(0.0, name="flatten_it")(y)  # a softmax of zeros: 0.1 everywhere
    return keras.Model(x, keras.layers.Softmax(name="p")(y))
"""


@pytest.mark.slow
def test_a_saturated_model_is_noted_and_fails_with_strict(tmp_path):
    (tmp_path / "sat.py").write_text(SATURATED)
    args = ["--model", "sat:build", "--golden-dir", str(tmp_path / "golden"), "--backend", "jax", "--backend", "torch"]
    made = cli("golden", *args, "--out", str(tmp_path / "g"), cwd=tmp_path)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    plain = cli("parity", *args, "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout[-2000:]
    cells = json.loads((tmp_path / "a" / "parity.json").read_text())["cells"]
    assert cells and all(
        any("every value is 0.1" in p and p.startswith("note: ") for p in c["problems"]) for c in cells
    )
    strict = cli("parity", *args, "--strict", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert strict.returncode == 1, strict.stdout[-2000:]
    assert "classifier_activation=None" in strict.stdout


@pytest.mark.slow
def test_strict_bits_fails_a_moved_bit_of_this_platforms_snapshot(tmp_path):
    goldens = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN / "linear", goldens / "linear")
    args = ["--model", "linear", "--backend", "jax", "--no-training", "--golden-dir", str(goldens)]
    # this machine's own snapshot first, whatever CPU it has; then one of its bits moved
    recorded = cli("golden", "--snapshots-only", *args[:4], "--golden-dir", str(goldens), "--out", str(tmp_path / "g"))
    assert recorded.returncode == 0, recorded.stdout[-2000:]
    platform = json.loads((tmp_path / "g" / "raw" / "jax.json").read_text())["platform"]
    snap = golden.snapshot_path("linear", platform, "jax", goldens)
    arrays = golden.read_npz(snap)
    key = "dense_nobias/predict/output"
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nextafter(arrays[key].flat[0], np.float32(np.inf))
    golden.write_npz(snap, arrays)
    relaxed = cli("parity", *args, "--out", str(tmp_path / "a"))
    assert relaxed.returncode == 0, relaxed.stdout[-2000:]
    strict = cli("parity", *args, "--strict-bits", "--out", str(tmp_path / "b"))
    assert strict.returncode == 1, strict.stdout[-2000:]
    cells = json.loads((tmp_path / "b" / "parity.json").read_text())["cells"]
    (moved,) = [c for c in cells if c["status"] == "fail"]
    assert (moved["case"], moved["path"]) == ("dense_nobias", "predict")
    assert "bits moved against the snapshot of this platform" in moved["problems"][0]
    assert "ulp@max" in moved["problems"][0] and "--snapshots-only" in moved["problems"][0]

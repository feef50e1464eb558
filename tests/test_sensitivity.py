"""`keras-parity sensitivity`: the bracket it closes around each layer's threshold, and the
example model end to end, its thresholds checked again by planting them into `parity` itself."""

import json
import shutil

import numpy as np
import pytest
from helpers import ROOT, cli

from keras_parity import sensitivity
from keras_parity.golden import read_npz
from keras_parity.run import plant
from keras_parity.sensitivity import show

EXAMPLE = ROOT / "examples" / "shapes"


def _row(estimate, **kw) -> sensitivity.Threshold:
    return sensitivity.Threshold("m", "c", "dense", "output", "jax", estimate, estimate, **kw)


def _close(row: sensitivity.Threshold, truth: float) -> sensitivity.Threshold:
    """The rounds of sensitivity._confirm against a judge failing every change above `truth`."""
    asked = sensitivity._first_bracket(row)
    for _ in range(sensitivity.ROUNDS):
        for delta in asked:
            d = plant.applied(delta)
            row = sensitivity._seen(row, d, d > truth, ("compare",) if d > truth else ())
        asked = sensitivity._next(row)
        if not asked:
            break
    return row


@pytest.mark.parametrize("truth_over_estimate", [0.9, 0.5, 0.2, 2.0, 5.0])
def test_the_bracket_closes_around_the_true_threshold(truth_over_estimate):
    estimate = 3.3e-6
    row = _close(_row(estimate), truth_over_estimate * estimate)
    assert row.confirmed, row
    assert row.passed <= truth_over_estimate * estimate < row.caught, row
    assert row.caught_by == ("compare",)


def test_a_change_nothing_judged_sees_is_hidden_up_to_the_ceiling():
    row = _close(_row(None), truth=10.0)  # a branch the inputs never take: nothing fails
    assert row.caught is None and row.hidden and not row.confirmed
    assert row.passed == pytest.approx(sensitivity.CEILING, rel=1e-6)
    (line,) = show.blind_spots([row])
    assert line.startswith("m/c on jax: a change of 30% in 'dense' (output) passes; nothing the suite judges moves")
    assert "--inputs" in line


def test_a_bracket_wider_than_three_is_not_confirmed():
    row = _row(1e-5, caught=1e-5, passed=1e-6)
    assert not row.confirmed and sensitivity._next(row) == [pytest.approx(1e-5 / 3)]


def test_thresholds_round_up_to_two_digits():
    assert sensitivity._round_up(1.234e-6) == pytest.approx(1.3e-6)
    assert sensitivity._round_up(9.91e-6) == pytest.approx(1.0e-5)
    assert sensitivity._round_up(4.0e-3) == pytest.approx(4.0e-3)


def test_a_plant_of_every_layer_is_one_plant_per_layer():
    plants = [{"id": "g", "layer": "*", "delta": 1e-3}, {"id": "base", "layer": "", "delta": 0.0}]
    out = plant._expanded(plants, ["conv", "bn"])
    assert [(p["id"], p["layer"]) for p in out] == [("g:conv", "conv"), ("g:bn", "bn"), ("base", "")]


def test_the_json_keeps_every_threshold(tmp_path):
    rows = [_close(_row(2e-6), 1e-6), _close(_row(None), 10.0)]
    path = show.write_json(rows, tmp_path / "sensitivity.json")
    data = json.loads(path.read_text())
    assert [r["confirmed"] for r in data["thresholds"]] == [True, False]
    assert [r["hidden"] for r in data["thresholds"]] == [False, True]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """`sensitivity` on the example model (a saved .keras file with its inputs), every backend."""
    out = tmp_path_factory.mktemp("sensitivity")
    args = ("--model-file", str(EXAMPLE / "shapes.keras"), "--inputs", str(EXAMPLE / "inputs.npz"))
    proc = cli("sensitivity", *args, "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, json.loads((out / "sensitivity.json").read_text())["thresholds"]


@pytest.mark.slow
def test_every_layer_of_the_example_has_a_confirmed_threshold_on_every_backend(example):
    out, stdout, rows = example
    layers = {"conv1", "bn1", "relu1", "pool1", "conv2", "flatten", "dense", "logits", "probabilities"}
    assert {(r["layer"], r["backend"]) for r in rows if r["target"] == "output"} == {
        (layer, b) for layer in layers for b in ("tensorflow", "jax", "torch")
    }
    assert {r["layer"] for r in rows if r["target"] == "weights"} == {"conv1", "bn1", "conv2", "dense", "logits"}
    assert all(r["confirmed"] and not r["hidden"] for r in rows), [r for r in rows if not r["confirmed"]]
    # its tolerance is its measured noise's, not the flat 1e-4: every change of 1e-4 is caught
    assert max(r["caught"] for r in rows) < 2e-5
    assert "shapes/inference: the least change of a layer that fails the verdict" in stdout
    assert (out / "sensitivity" / "shapes-inference.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_unplanted_call_is_the_cell_itself(example):
    """The plant harness changes nothing by itself: its unplanted call gives the run's own bits."""
    out = example[0] / "sensitivity" / "gain"
    for backend, path in (("tensorflow", "eager"), ("jax", "eager"), ("torch", "predict")):
        planted = read_npz(out / f"{backend}.planted.npz")["base/arrays/shapes/inference/" + path + "/output"]
        assert np.array_equal(planted, read_npz(out / f"{backend}.npz")[f"shapes/inference/{path}/output"])


PLANT = """
import functools

import keras

_unplanted = keras.layers.Dense.call


@functools.wraps(_unplanted)  # Keras reads the call's signature
def _planted(self, *args, **kwargs):  # the layer's output times 1 + delta, as sensitivity plants it
    out = _unplanted(self, *args, **kwargs)
    return out * (1.0 + {delta!r}) if self.name == {layer!r} else out


keras.layers.Dense.call = _planted
"""


@pytest.mark.slow
@pytest.mark.parametrize("which", ["caught", "passed"])
def test_parity_agrees_with_each_threshold_of_a_layer(example, tmp_path, which):
    """The threshold of 'dense' on every backend, planted into Keras through --custom-objects and
    run by `parity` itself: at the threshold every backend fails, at a third of it every one passes."""
    rows = [r for r in example[2] if r["layer"] == "dense" and r["target"] == "output"]
    delta = max(r[which] for r in rows) if which == "caught" else min(r[which] for r in rows)
    (tmp_path / "plant_dense.py").write_text(PLANT.format(delta=delta, layer="dense"))
    shutil.copytree(EXAMPLE, tmp_path / "shapes")
    proc = cli(
        "parity", "--model-file", str(tmp_path / "shapes" / "shapes.keras"),
        "--inputs", str(tmp_path / "shapes" / "inputs.npz"), "--custom-objects", "plant_dense",
        "--out", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    cells = json.loads((tmp_path / "out" / "parity.json").read_text())["cells"]
    want = "fail" if which == "caught" else "pass"
    assert {c["backend"] for c in cells} == {"tensorflow", "jax", "torch"}
    assert all(c["status"] == want for c in cells), (delta, proc.stdout[-2000:])


DEAD_BRANCH = """
import sys

import keras
import numpy as np

x = keras.Input((4,), name="x")
dead = keras.layers.Dense(3, activation="relu", name="dead")(x)  # bias -10: off for inputs in [-1, 1]
live = keras.layers.Dense(3, name="live")(x)
model = keras.Model(x, keras.layers.Add(name="sum")([dead, live]))
rng = np.random.default_rng(0)
model.get_layer("dead").set_weights([rng.uniform(-1, 1, (4, 3)).astype("float32"), np.full(3, -10.0, "float32")])
model.get_layer("live").set_weights([rng.uniform(-1, 1, (4, 3)).astype("float32"), np.zeros(3, "float32")])
model.save(sys.argv[1])
np.savez(sys.argv[2], x=rng.uniform(-1, 1, (8, 4)).astype("float32"))
"""


@pytest.mark.slow
def test_a_branch_the_inputs_never_reach_is_named_hidden_with_its_fix(tmp_path):
    """A ReLU branch off for every input: no change of its output or weights moves anything the
    suite judges, so the command names it, with more inputs or a wider range as the fix."""
    import subprocess

    from keras_parity.run import envs

    env = {"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    (tmp_path / "make.py").write_text(DEAD_BRANCH)
    model, inputs = tmp_path / "dead.keras", tmp_path / "dead.npz"
    subprocess.run([str(envs.ensure("tensorflow")), str(tmp_path / "make.py"), str(model), str(inputs)], env=env,
                   check=True)  # fmt: skip
    args = ("--model-file", str(model), "--inputs", str(inputs), "--backend", "jax")
    made = cli("golden", *args, "--out", str(tmp_path / "g"))
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    proc = cli("sensitivity", *args, "--out", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads((tmp_path / "s" / "sensitivity.json").read_text())["thresholds"]
    hidden = {(r["layer"], r["target"]) for r in rows if r["hidden"]}
    assert hidden == {("dead", "output"), ("dead", "weights")}, rows
    said = " ".join(proc.stdout.split())
    assert "hidden dead/inference on jax: a change of 30% in 'dead' (output) passes; nothing the suite judges" in said
    assert all(r["confirmed"] for r in rows if r["layer"] in ("live", "sum")), rows

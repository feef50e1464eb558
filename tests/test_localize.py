"""Layer-wise localization: a planted semantic change in one layer of each small model is named,
on every backend and on the training path, by a failing parity run without being asked; nothing
is named where nothing was planted. (A change deep in ResNet50 is named in test_planted.py.)"""

import json
from pathlib import Path

import pytest
from helpers import cli, copy_project

from keras_parity.registry.spec import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

PLANTS = [  # file, text, planted text: one semantic change per model
    ("linear.py", 'Dense(10, activation="sigmoid", name="hidden")', 'Dense(10, activation="tanh", name="hidden")'),
    ("cnn.py", 'Conv1D(4, 3, padding="same", name="conv")', 'Conv1D(4, 3, padding="causal", name="conv")'),
    ("bn_mlp.py", "epsilon=1e-3", "epsilon=1e-2"),
    ("lstm.py", 'LSTM(10, name="lstm")', 'LSTM(10, recurrent_activation="hard_sigmoid", name="lstm")'),
]  # fmt: skip
TRAINING = ("train_grad", "train_sgd", "train_adam")  # the training path of the planted builders
NAMED = [  # model, case, the layer that must be named
    ("linear", "sigmoid_mlp", "hidden"),
    *(("linear", case, "hidden") for case in TRAINING),
    ("cnn", "conv1d_same", "conv"),
    ("bn_mlp", "inference", "bn"),
    ("bn_mlp", "training", "bn"),
    *(("bn_mlp", case, "bn") for case in TRAINING),
    ("lstm", "lstm", "lstm"),
    *(("lstm", case, "lstm") for case in TRAINING),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    project = tmp_path_factory.mktemp("planted")
    copy_project(project)
    for name, old, new in PLANTS:
        src = project / "models" / name
        text = src.read_text()
        assert old in text, f"{name} no longer holds {old!r}"
        src.write_text(text.replace(old, new))
    proc = cli("parity", *(a for name, *_ in PLANTS for a in ("--model", name.removesuffix(".py"))),
               "--out", str(project / "out"), cwd=project)  # fmt: skip
    return proc, json.loads((project / "out" / "parity.json").read_text())["cells"]


@pytest.mark.parametrize("model, case, layer", NAMED, ids=[f"{m}-{c}" for m, c, _ in NAMED])
def test_a_planted_change_is_named_on_every_backend(planted, model, case, layer):
    proc, cells = planted
    assert proc.returncode == 1
    stdout = proc.stdout
    mine = [c for c in cells if c["model"] == model and c["case"] == case]
    assert {c["backend"] for c in mine} == set(BACKENDS)
    for c in mine:
        assert c["status"] == "fail", c
        named = [p for p in c["problems"] if p.startswith("localized: ")]
        assert named and named[0].startswith(f"localized: first divergent layer '{layer}' "), c["problems"]
        # the failure's one line names the layer (every finding in full: results/parity-table.txt)
        (line,) = [ln for ln in stdout.splitlines() if ln.startswith(f"FAIL {model}/{case} ({c['backend']}/cpu/")]
        assert c["path"] in line.split("): ")[0] and f"; first divergent layer '{layer}'" in line, line
        # the backend's own float64 run departs too: different math, not rounding (torch's
        # float64 training runs return a float32 loss, which leaves them unclassified)
        if case in TRAINING and c["backend"] == "torch":
            assert c["rounding"] in ("semantic", "unclassified"), c["problems"]
            continue
        assert c["rounding"] == "semantic", c["problems"]
        assert any(p.startswith("semantic: the float64 run departs from the reference too") for p in c["problems"])


def test_nothing_is_named_where_nothing_was_planted(planted):
    _, cells = planted
    planted_cases = {(m, c) for m, c, _ in NAMED}
    clean = [c for c in cells if (c["model"], c["case"]) not in planted_cases]
    assert clean and all(c["status"] == "pass" for c in clean), [c for c in clean if c["status"] != "pass"]
    assert not any(p.startswith("localized") for c in clean for p in c["problems"])


def test_localize_shows_the_whole_profile_and_a_plot(tmp_path):
    proc = cli("localize", "--model", "lstm", "--backend", "torch", "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "lstm/lstm on torch: error vs float64, layer by layer" in proc.stdout
    assert "no layer's error jumps (R > 10): it grows gradually" in proc.stdout and "localized in" in proc.stdout
    assert (tmp_path / "lstm-lstm-torch.png").read_bytes()[:4] == b"\x89PNG"


def test_float64_runs_label_every_cell_and_tensorflow_honours_float64(tmp_path):
    """TensorFlow computes float64 models in float64 throughout: every difference is rounding.
    The other backends' cells get a label too, naming a layer where float64 is not honoured."""
    proc = cli("parity", "--float64", "--model", "bn_mlp", "--model", "cnn", "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    cells = json.loads((tmp_path / "parity.json").read_text())["cells"]
    assert all(c["rounding"] in ("rounding", "semantic", "unclassified") for c in cells)
    tf = [c for c in cells if c["backend"] == "tensorflow" and c["case"] not in ("train_sgd", "train_adam")]
    assert tf and all(c["rounding"] == "rounding" and c["float64_rel_l2"] <= 1e-12 for c in tf)
    # the optimizer steps are not float64 in Keras itself: unclassified, and why
    steps = [c for c in cells if c["backend"] == "tensorflow" and c not in tf]
    assert len(steps) == 4 and all(c["rounding"] == "unclassified" for c in steps)
    assert all(any("casts momentum and Adam's betas through float32" in p for p in c["problems"]) for c in steps)
    for c in cells:
        if c["rounding"] == "unclassified":
            assert any("float64 is not honoured end to end" in p for p in c["problems"]), c

"""`repro`: a cell written as a standalone folder, run in the backend's own environment with
nothing of keras-parity importable, prints the numbers the suite measured for that cell; a
planted failure of a user's builder reproduces as the failure it is; bad requests stop in one
line before any backend runs."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import cli

from keras_parity.run import envs

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(\w+) (\w+) (output(?::\d+)?): rel L2 (\S+), max abs (\S+) \(vs float64\)$", re.M)


def _run_standalone(folder: Path, backend: str, override: bool = False) -> tuple[str, dict]:
    """repro.py in the backend's environment, from its own folder, with a bare environment:
    no PYTHONPATH, no KERAS_BACKEND (the script sets its own) unless `override`. Its lines by
    (path, output)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    env.update({"KERAS_BACKEND": backend} if override else {})
    proc = subprocess.run(
        [str(envs.ensure(backend)), "repro.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert {m[1] for m in LINE.finditer(proc.stdout)} == {backend}, proc.stdout
    return proc.stdout, {(m[2], m[3]): (float(m[4]), float(m[5])) for m in LINE.finditer(proc.stdout)}


def _assert_suite_numbers(folder: Path, printed: dict) -> dict:
    measured = json.loads((folder / "suite.json").read_text())["measured"]
    want = {(path, out): m for path, c in measured.items() for out, m in c["outputs"].items()}
    assert set(printed) == set(want)
    for k, (rel, max_abs) in printed.items():
        assert rel == pytest.approx(want[k]["rel_l2"], rel=1e-3), k
        assert max_abs == pytest.approx(want[k]["max_abs"], rel=1e-3), k
    return measured


def test_a_builtin_cell_runs_standalone_and_prints_the_suites_numbers(tmp_path):
    proc = cli("repro", "lstm/lstm", "--backend", "jax", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "lstm-lstm-jax"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "expected.npz", "inputs.npz", "model.json", "repro.py", "suite.json", "weights.npz",
    ]  # fmt: skip
    script = (folder / "repro.py").read_text()
    assert "keras_parity" not in script
    out, printed = _run_standalone(folder, "jax")
    assert set(printed) == {("predict", "output"), ("eager", "output")}
    assert re.search(r"^python 3\.\S+, numpy \S+, keras 3\.\S+, jax \S+$", out, re.M), out
    measured = _assert_suite_numbers(folder, printed)
    readme = (folder / "README.md").read_text()
    assert script.rstrip() in readme and "python repro.py" in readme
    assert f"{measured['predict']['outputs']['output']['rel_l2']:.4e}" in readme
    # the model's config rebuilds on another backend too, chosen by the environment
    _, elsewhere = _run_standalone(folder, "torch", override=True)
    assert set(elsewhere) == {("predict", "output"), ("eager", "output")}
    assert elsewhere["predict", "output"][0] < 10 * measured["predict"]["tolerance"]


BUILDER = """import keras


def build():
    x = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="tanh", name="hidden")(x)
    h = keras.layers.LayerNormalization(epsilon={eps}, name="norm")(h)
    return keras.Model(x, keras.layers.Dense(3, name="out")(h), name="tiny")
"""


def test_a_planted_failure_of_a_builder_reproduces_with_the_suites_numbers(tmp_path):
    """Goldens of a builder, then its LayerNormalization's epsilon moved: the cell fails, and
    the reproducer written for it prints that failing error, the suite's, on its own."""
    (tmp_path / "tinymodels.py").write_text(BUILDER.format(eps=1e-3))
    common = ["--model", "tinymodels:build", "--golden-dir", str(tmp_path / "golden"), "--backend", "torch"]
    made = cli("golden", *common, "--out", str(tmp_path / "g"), cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    (tmp_path / "tinymodels.py").write_text(BUILDER.format(eps=0.5))
    proc = cli("repro", *common, "--out", str(tmp_path / "repro"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fail tinymodels.build/inference torch predict output" in proc.stdout
    folder = tmp_path / "repro" / "tinymodels.build-inference-torch"
    _, printed = _run_standalone(folder, "torch")
    measured = _assert_suite_numbers(folder, printed)
    assert measured["predict"]["status"] == "fail"
    assert printed["predict", "output"][0] > 10 * measured["predict"]["tolerance"]
    assert json.loads((folder / "model.json").read_text())["layers"][2]["config"]["epsilon"] == 0.5


@pytest.mark.parametrize(
    "args, says",
    [
        (["lstm/nope", "--backend", "jax"], "unknown case 'nope' of lstm; choose from: lstm, train_grad"),
        (["nope/lstm", "--backend", "jax"], "unknown model 'nope'; choose from: linear, cnn"),
        (["lstm", "--backend", "jax"], "name the cell as MODEL/CASE, e.g. lstm/lstm"),
        (["lstm/lstm"], "no backend named; pass --backend with one of tensorflow, jax, torch"),
        (["lstm/lstm", "--backend", "mxnet"], "unknown backend 'mxnet'; pass --backend with one of"),
        (["lstm/train_adam", "--backend", "jax"], "lstm/train_adam is a training case (an optimizer's steps)"),
        (["bn_mlp/moving_stats", "--backend", "jax"], "reproducers cover forward cases: bn_mlp/inference"),
        (["--model", "nomod:build", "--backend", "jax"], "no float64 reference for nomod.build at"),
    ],
    ids=["case", "model", "no-case", "no-backend", "backend", "training", "moving-stats", "no-goldens"],
)
def test_bad_requests_stop_in_one_line_before_any_backend_runs(tmp_path, args, says):
    proc = cli("repro", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stdout + proc.stderr
    assert len((proc.stdout + proc.stderr).strip().splitlines()) == 1, proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()

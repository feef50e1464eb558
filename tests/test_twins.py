"""Native twins (plain PyTorch, plain JAX, tf_keras) against the same goldens, and the classic
port mistakes planted one at a time in a copy of the project: each fails its twin, named."""

import json

import numpy as np
import pytest
from helpers import cli, copy_project

from keras_parity import golden
from keras_parity.judge.evaluate import evaluate
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run import launch as run_module
from keras_parity.run import machine
from keras_parity.run.launch import run_backends
from keras_parity.twins import port

BUILTIN = builtin_registry()

pytestmark = pytest.mark.slow
TWINS = ("torch-native", "jax-native", "tf_keras")

# (id, file, text, planted text, model, twin, what the failure names)
PLANTS = [
    (
        "untransposed-kernel",
        "keras_parity/twins/port.py",
        "return np.ascontiguousarray(kernel.T)",
        "return np.ascontiguousarray(kernel.reshape(kernel.shape[::-1]))",  # the buffer read as (out, in)
        "linear",
        "torch-native",
        "FAIL linear/sigmoid_mlp (torch-native/cpu/native): output: relative L2 error",
    ),
    (
        "lstm-bias-twice",
        "keras_parity/twins/port.py",
        '"bias_hh_l0": np.zeros_like(bias),',
        '"bias_hh_l0": bias.copy(),',  # the one Keras bias copied into both of torch's
        "lstm",
        "torch-native",
        "FAIL lstm/lstm (torch-native/cpu/native): output: relative L2 error",
    ),
    (
        "lstm-second-bias-missing",
        "keras_parity/twins/port.py",
        '"bias_hh_l0": np.zeros_like(bias),',
        "",
        "lstm",
        "torch-native",
        'Missing key(s) in state_dict: "lstm.bias_hh_l0"',
    ),
    (
        "bn-momentum-convention",
        "keras_parity/twins/port.py",
        '"momentum": 1.0 - momentum',
        '"momentum": momentum',  # Keras's momentum handed to torch as is
        "bn_mlp",
        "torch-native",
        "FAIL bn_mlp/moving_stats (torch-native/cpu/native): bn/moving_mean: relative L2 error",
    ),
    (
        "bn-epsilon-default",
        "keras_parity/twins/torch_native.py",
        "nn.BatchNorm1d(16, **port.bn_options(epsilon=1e-3, momentum=0.99))",
        "nn.BatchNorm1d(16, momentum=0.01)",  # torch's default epsilon, 1e-5
        "bn_mlp",
        "torch-native",
        "FAIL bn_mlp/inference (torch-native/cpu/native): output: relative L2 error",
    ),
    (
        "symmetric-same-padding",
        "keras_parity/twins/torch_native.py",
        "h = F.relu(self.conv_s2(_same(h, 3, 2)))",
        "h = F.relu(self.conv_s2(F.pad(h, (1, 1, 1, 1))))",  # padding=k // 2, as nn.Conv2d(padding=1)
        "cnn",
        "torch-native",
        "FAIL cnn/conv2d (torch-native/cpu/native): output: relative L2 error",
    ),
    (
        "default-initializers",
        "keras_parity/twins/torch_native.py",
        "module.load_state_dict(sd, strict=True)",
        "pass  # the weights were never ported",
        "cnn",
        "torch-native",
        "FAIL cnn/conv1d_same (torch-native/cpu/native): output: relative L2 error",
    ),
    (
        "jax-symmetric-same-padding",
        "keras_parity/twins/port.py",
        "return total // 2, total - total // 2",
        "return total - total // 2, total - total // 2",  # as much before as after
        "cnn",
        "jax-native",
        "FAIL cnn/conv2d (jax-native/cpu/native): output: relative L2 error",
    ),
]


def test_same_padding_is_keras_s():
    assert port.same_pads(8, 3, 2) == (0, 1)  # the asymmetric case
    assert port.same_pads(8, 3, 1) == (1, 1)
    assert port.same_pads(7, 3, 2) == (1, 1)


def test_ports_follow_each_convention():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((5, 3))
    x = rng.standard_normal((2, 5))
    assert np.allclose(x @ port.dense_to_torch(k).T, x @ k)  # nn.Linear: x @ W.T
    conv = rng.standard_normal((3, 2, 4, 6))
    assert port.conv_to_torch(conv).shape == (6, 4, 3, 2)
    assert port.conv_to_torch(conv)[5, 3, 2, 1] == conv[2, 1, 3, 5]
    lstm = port.lstm_to_torch(rng.standard_normal((1, 40)), rng.standard_normal((10, 40)), np.arange(40.0))
    assert lstm["weight_ih_l0"].shape == (40, 1) and lstm["weight_hh_l0"].shape == (40, 10)
    assert (lstm["bias_ih_l0"] + lstm["bias_hh_l0"] == np.arange(40.0)).all()  # torch adds its two biases
    assert port.bn_options(1e-3, 0.99) == {"eps": 1e-3, "momentum": pytest.approx(0.01)}


def test_every_twin_fills_every_forward_cell_and_passes(tmp_path):
    out = tmp_path / "out"
    proc = cli("parity", "--twins", "--no-training", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    cells = json.loads((out / "parity.json").read_text())["cells"]
    forward = {(c["model"], c["case"]) for c in cells if c["backend"] == "tensorflow"}
    for twin in TWINS:
        mine = {(c["model"], c["case"]) for c in cells if c["backend"] == twin}
        assert mine == forward, twin
    assert all(c["status"] == "pass" for c in cells)
    # Bits are asserted against this machine's own snapshots only: another CPU's kernels may
    # round differently (a platform without snapshots of its own reads 'other-platform').
    here = machine.platform_key("cpu", None)
    for c in (c for c in cells if c["backend"] in TWINS):
        own = golden.snapshot_path(c["model"], here, c["backend"]).exists()
        assert c["snapshot"] == ("identical" if own else "other-platform"), c


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dst = tmp_path_factory.mktemp("twins")
    copy_project(dst)
    return dst


@pytest.mark.parametrize("file, old, new, model, twin, says", [p[1:] for p in PLANTS], ids=[p[0] for p in PLANTS])
def test_a_planted_port_mistake_fails_its_twin_named(project, tmp_path, file, old, new, model, twin, says):
    src = project / file
    original = src.read_text()
    assert old in original, f"{file} no longer holds {old!r}"
    src.write_text(original.replace(old, new))
    try:
        out = tmp_path / "out"
        proc = cli("parity", "--twins", twin, "--model", model, "--backend", "jax", "--out", str(out), cwd=project)
    finally:
        src.write_text(original)
    # a wrong number is a regression (1); a port the twin cannot even load crashes it, an ERROR (3)
    assert proc.returncode == (1 if says.startswith("FAIL") else 3), proc.stdout[-2000:]
    assert says in proc.stdout, proc.stdout[-4000:]
    cells = json.loads((out / "parity.json").read_text())["cells"]
    assert {c["status"] for c in cells if c["backend"] == "jax"} == {"pass"}  # Keras itself is fine
    assert {c["status"] for c in cells if c["backend"] == twin} & {"fail", "error"}


def test_a_twin_asked_for_whose_library_is_missing_is_an_error_and_the_rest_go_on(monkeypatch, tmp_path):
    # tf_keras's twin in the tensorflow environment, which has Keras 3 but no tf_keras
    monkeypatch.setitem(run_module.ENV, "tf_keras", ("tensorflow", "tensorflow"))
    runs = run_backends(
        ["jax"], ["linear"], tmp_path, twins=["tf_keras", "torch-native"], registry=BUILTIN, log=lambda *a: None
    )
    cells = evaluate(runs, ["linear"], BUILTIN, training=False)
    (failed,) = [c for c in cells if c.backend == "tf_keras"]
    assert failed.status == "error"
    assert (
        "tf_keras was asked for and cannot run: ModuleNotFoundError: No module named 'tf_keras'" in failed.problems[0]
    )
    assert "leave tf_keras out of --twins" in failed.problems[0]
    assert {c.status for c in cells if c.backend in ("jax", "torch-native")} == {"pass"}

"""The installable package: its wheel, its console script, and the pytest fixture in a fresh
repository that installs the wheel and runs the nox session docs/own-models.md gives it."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

from keras_parity import __version__
from keras_parity.run import envs

pytestmark = pytest.mark.slow
OWN_MODELS_DOC = (ROOT / "docs" / "own-models.md").read_text()

USER_TEST = """
from pathlib import Path

import keras
import numpy as np

HERE = Path(__file__).parent


def test_saved_classifier(keras_parity):
    model = keras.saving.load_model(HERE.parent / "shapes.keras", compile=False)
    keras_parity.check(model, {"image": np.load(HERE.parent / "inputs.npz")["image"]})


def test_model_built_in_code(keras_parity):
    x = keras.Input((5,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, activation="tanh")(keras.layers.RMSNormalization()(x)))
    keras_parity.seed_weights(model)
    keras_parity.check(model, np.linspace(-1, 1, 20, dtype="float32").reshape(4, 5))
"""


def _uv(*args, **kw):
    return subprocess.run([sys.executable, "-m", "uv", *args], check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "keras-parity"  # a clean copy: no build/ left in the checkout
    top = {"results", "golden", "examples", "tests", "build"}  # the checkout's folders, not keras_parity/golden
    shutil.copytree(
        ROOT, src, ignore=lambda d, names: [n for n in names if n.startswith(".") or (d == str(ROOT) and n in top)]
    )
    _uv("build", "--wheel", "--out-dir", str(out), str(src))
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_holds_the_package_its_locks_and_the_plugin(wheel):
    assert wheel.name == f"keras_parity-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_parity/requirements/pins.toml" in names
    for plat in ("linux-x86_64", "linux-aarch64", "macos-arm64"):
        for lock in ("harness.txt", "jax.txt", "tensorflow.txt", "torch.txt"):
            assert f"keras_parity/requirements/{plat}/{lock}" in names
    assert "keras_parity/pytest_plugin.py" in names and "keras_parity/models/registry.py" in names
    # No top-level name but its own: a user's `models` package stays theirs.
    assert {n.split("/", 1)[0] for n in names} == {"keras_parity", f"keras_parity-{__version__}.dist-info"}
    assert "keras_parity/twins/port.py" in names and "keras_parity/twins/runner.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"keras_parity-{__version__}.dist-info/entry_points.txt").decode()
    assert "keras-parity = keras_parity.cli:main" in entry_points
    assert "keras_parity = keras_parity.pytest_plugin" in entry_points


def test_console_script_lists_the_nox_actions(wheel, tmp_path):
    _uv("venv", "-q", str(tmp_path / "venv"), "--python", sys.executable)
    _uv("pip", "install", "-q", "--python", str(tmp_path / "venv/bin/python"), str(wheel))
    help_text = subprocess.run(
        [str(tmp_path / "venv/bin/keras-parity"), "--help"], check=True, capture_output=True, text=True
    ).stdout
    actions = set(re.findall(r'_keras_parity\(session, "(\w+)"\)', (ROOT / "noxfile.py").read_text()))
    assert actions >= {"parity", "golden", "bench", "images", "localize", "drift", "report"}
    listed = set(re.search(r"\{([\w,]+)\}", help_text).group(1).split(","))
    assert listed == actions, help_text
    for dev in ("tests", "lint", "lock"):
        assert f"nox -s {dev}" in help_text  # named as what a checkout has
    # What needs a checkout says so in one line, wherever it is run from.
    for args, what in ((["images"], "`keras-parity images`"), (["parity", "--model", "linear"], "built-in models")):
        proc = subprocess.run(
            [str(tmp_path / "venv/bin/keras-parity"), *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert proc.returncode != 0 and what in proc.stderr and "checkout of keras-parity" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_installed_command_runs_a_model_file_from_any_folder(wheel, tmp_path):
    """Installed with pip, run from the user's folder with the default --out: the backend
    process starts inside site-packages, yet the results land in ./results of that folder."""
    _uv("venv", "-q", str(tmp_path / "venv"), "--python", sys.executable)
    _uv("pip", "install", "-q", "--python", str(tmp_path / "venv/bin/python"), str(wheel))
    work = tmp_path / "work"
    (work / "tests").mkdir(parents=True)
    for f in ("shapes.keras", "inputs.npz"):
        shutil.copy(ROOT / "examples" / "shapes" / f, work / "tests" / f)
    shutil.copytree(ROOT / "examples" / "shapes" / "golden", work / "tests" / "golden")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPATH")}
    env["KERAS_PARITY_ENVS"] = str(envs.env_root())
    args = ["parity", "--model-file", "tests/shapes.keras", "--inputs", "tests/inputs.npz", "--backend", "jax"]
    proc = subprocess.run(
        [str(tmp_path / "venv/bin/keras-parity"), *args], cwd=work, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert (work / "results" / "parity.json").exists() and (work / "results" / "raw" / "jax.json").exists()
    assert not list((tmp_path / "venv").rglob("results"))


def _documented_noxfile(wheel: Path) -> str:
    block = re.search(r"```python\n(# noxfile\.py of your repository\n.*?)```", OWN_MODELS_DOC, re.S).group(1)
    assert 'KERAS_PARITY = "keras-parity"' in block
    return block.replace('KERAS_PARITY = "keras-parity"', f'KERAS_PARITY = "{wheel}"')


def _nox(repo: Path, *args) -> subprocess.CompletedProcess:
    # uv as nox's installer, with the local wheel folder for torch's CPU build (docs/own-models.md)
    links = " ".join(envs.find_links())
    # Without CI: under it the fixture writes no goldens, and this test watches them being made.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS", "PYTHONPATH")) and k != "CI"}
    env.update(UV_FIND_LINKS=links, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "nox", "--default-venv-backend", "uv", "-s", "parity", *args]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)


def test_fixture_in_a_fresh_repository_under_three_backends(wheel, tmp_path):
    repo = tmp_path / "their-repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "noxfile.py").write_text(_documented_noxfile(wheel))
    (repo / "tests" / "test_models.py").write_text(USER_TEST)
    for f in ("shapes.keras", "inputs.npz"):
        shutil.copy(ROOT / "examples" / "shapes" / f, repo / f)

    first = _nox(repo)  # tensorflow creates the goldens (and fails, once); jax and torch meet them
    log = first.stdout + first.stderr
    assert first.returncode == 1, log
    assert "created the goldens of test_saved_classifier (float64 reference, tensorflow snapshot)" in log
    assert "created the goldens of test_model_built_in_code (cross-backend reference, tensorflow snapshot)" in log
    assert "parity(backend='jax'): success" in log and "parity(backend='torch'): success" in log
    goldens = repo / "tests" / "test_models"
    snapshots = sorted(p.name for p in goldens.glob("test_saved_classifier/snapshots/*/*.npz"))
    assert snapshots == ["jax.npz", "tensorflow.npz", "torch.npz"]

    again = _nox(repo, "-R")  # the environments as they are, no reinstall
    assert again.returncode == 0, again.stdout + again.stderr

    # One bias of the saved model moved: every backend fails, naming the test's model.
    code = (
        "import keras, sys; m = keras.saving.load_model(sys.argv[1], compile=False); b = m.get_layer('logits').bias; "
        "v = keras.ops.convert_to_numpy(b).copy(); v[1] += 0.25; b.assign(v); m.save(sys.argv[1])"
    )
    py = repo / ".nox" / "parity-backend-jax" / "bin" / "python"
    subprocess.run([str(py), "-c", code, str(repo / "shapes.keras")], env={"KERAS_BACKEND": "jax"}, check=True)
    before = {p: p.read_bytes() for p in goldens.rglob("*") if p.is_file()}
    planted = _nox(repo, "-R")
    log = planted.stdout + planted.stderr
    assert planted.returncode == 1
    for backend in ("tensorflow", "jax", "torch"):
        assert f"test_saved_classifier on {backend} differs from its goldens" in log, log[-3000:]
        assert f"parity(backend='{backend}'): failed" in log
    assert "weights of 'test_saved_classifier' are not the ones the goldens were made from" in log
    assert {p: p.read_bytes() for p in before} == before  # nothing overwritten without --parity-regen

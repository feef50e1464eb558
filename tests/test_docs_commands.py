"""The commands docs/own-models.md gives, run as written (those that can run without a
backend's own environment): the fixture's regeneration then `git add`, `--force-regen` without
pytest-regressions, and installing the package from a checkout."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each pytest run in a subprocess imports TensorFlow

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "own-models.md"

USER_TEST = """
import keras
import numpy as np


def test_tiny(keras_parity):
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(x))
    keras_parity.seed_weights(model)
    keras_parity.check(model, {"x": np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)})
"""


def documented(start: str) -> str:
    """The one command line of the doc's bash blocks that starts with `start`, its comment cut."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.splitlines() if ln.startswith(start)]
    assert len(lines) == 1, f"{DOC.name} gives {len(lines)} commands starting with {start!r}"
    return lines[0]


@pytest.fixture
def their_repo(tmp_path):
    """A user's git repository holding one test of the fixture, and `pytest` on PATH as this
    suite's pytest with the plugin of this checkout (as an installed package registers it)."""
    repo, bin_dir = tmp_path / "their-repo", tmp_path / "bin"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_models.py").write_text(USER_TEST)
    bin_dir.mkdir()
    plugin = "-p keras_parity.pytest_plugin -p no:cacheprovider -q"
    (bin_dir / "pytest").write_text(f'#!/bin/sh\nexec {sys.executable} -m pytest {plugin} "$@"\n')
    (bin_dir / "pytest").chmod(0o755)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
    env |= {"TF_CPP_MIN_LOG_LEVEL": "3"}
    return repo, env


def _shell(line: str, repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=repo, env=env, capture_output=True, text=True)


def test_the_documented_regeneration_stages_the_goldens_and_force_regen_needs_no_other_plugin(their_repo):
    repo, env = their_repo
    done = _shell(documented("pytest --parity-regen"), repo, env)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=repo, capture_output=True, text=True)
    assert "tests/test_models/test_tiny/reference.npz" in staged.stdout.split(), done.stdout[-3000:] + done.stderr
    again = _shell("pytest", repo, env)
    assert again.returncode == 0, again.stdout[-3000:]
    forced = _shell("pytest --force-regen", repo, env)  # pytest-regressions is not installed here
    assert forced.returncode == 1 and "regenerated the goldens of test_tiny" in forced.stdout, forced.stdout[-3000:]


def test_the_documented_install_from_a_checkout_gives_the_command(tmp_path):
    line = documented("pip install .")
    assert line == "pip install ." and "uv pip install ." in DOC.read_text()
    src = tmp_path / "keras-parity"  # a copy: the build leaves nothing in this checkout
    top = {"results", "golden", "examples", "tests", "build"}
    shutil.copytree(
        ROOT, src, ignore=lambda d, names: [n for n in names if n.startswith(".") or (d == str(ROOT) and n in top)]
    )
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", str(tmp_path / "venv"), "--python", sys.executable], check=True)
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    subprocess.run([*uv, *("uv " + line).split()[1:], "-q", "--python", venv_python], cwd=src, check=True)
    help_text = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "keras-parity"), "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "parity" in help_text.stdout

"""What several test modules share: the keras-parity command line as a user runs it, and a
copy of the project to plant changes in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from keras_parity.run import envs

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=ROOT):
    """`python -m keras_parity ARGS` in `cwd` (a project copy reuses the backend environments)."""
    env = {**os.environ, "KERAS_PARITY_ENVS": str(envs.env_root()), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "keras_parity", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def copy_project(dst: Path) -> Path:
    """The harness, the models, the goldens and the locks copied into `dst` (keras_parity/models
    stays a link to the copy's models/, so a change planted there is the one that runs)."""
    for d in ("keras_parity", "models", "golden", "requirements"):
        ignore = shutil.ignore_patterns("__pycache__", "*.obtained.npz")
        shutil.copytree(ROOT / d, dst / d, symlinks=True, ignore=ignore)
    return dst

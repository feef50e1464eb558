"""What several test modules share: the keras-parity command line as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

from keras_parity import envs

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=ROOT):
    """`python -m keras_parity ARGS` in `cwd` (a project copy reuses the backend environments)."""
    env = {**os.environ, "KERAS_PARITY_ENVS": str(envs.env_root()), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "keras_parity", *args], cwd=cwd, env=env, capture_output=True, text=True
    )

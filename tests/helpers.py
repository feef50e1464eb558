"""What several test modules share: the keras-parity command line as a user runs it, and a
copy of the project to plant changes in."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from keras_parity import paths
from keras_parity.run import envs

ROOT = Path(__file__).resolve().parent.parent


def cli_env() -> dict[str, str]:
    """The environment of the command line a test runs. A project copy reuses the backend
    environments and the checkout's cache: compiled JAX programs and generated weights are keyed
    by what they hold, so a planted change misses them and the rest need not be made again in
    every copy."""
    return {
        **os.environ,
        "KERAS_PARITY_ENVS": str(envs.env_root()),
        "KERAS_PARITY_CACHE": str(paths.cache_dir()),
        "PYTHONPATH": str(ROOT),
    }


def cli(*args, cwd=ROOT):
    """`python -m keras_parity ARGS` in `cwd`, in cli_env()."""
    return subprocess.run(
        [sys.executable, "-m", "keras_parity", *args], cwd=cwd, env=cli_env(), capture_output=True, text=True
    )


def copy_project(dst: Path) -> Path:
    """The harness, the models, the goldens and the locks copied into `dst` (the copy's
    keras_parity.models is its own models/, so a change planted there is the one that runs)."""
    for d in ("keras_parity", "models", "golden", "requirements"):
        ignore = shutil.ignore_patterns("__pycache__", "*.obtained.npz")
        shutil.copytree(ROOT / d, dst / d, symlinks=True, ignore=ignore)
    return dst


@contextlib.contextmanager
def keras_in_float64():
    """floatx and the default dtype policy float64, both restored afterwards. Keras keeps the
    default policy from the first layer a process builds (a float32 one, when an earlier test
    built a layer), and a changed floatx alone does not reach it."""
    import keras

    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)

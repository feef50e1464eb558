"""Every folder and file of the repository the package reads or writes, in one place.

A source checkout (nox sessions) keeps everything under ROOT. An installed package (pip install
keras-parity) carries its locks and built-in models inside the package, and puts the backend
environments and caches under KERAS_PARITY_HOME, results under the current folder. A container
image holds the package alone, laid out as the installed one.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
CHECKOUT = (ROOT / "requirements" / "pins.toml").exists()

# The goldens, the drift history and the release record live in a checkout only.
GOLDEN = ROOT / "golden"
DRIFT = GOLDEN / "drift"
DRIFT_HISTORY = DRIFT / "history.csv"
RELEASES = DRIFT / "releases.json"
DOCKER = ROOT / "docker"

# The built-in models, their table and their measured noise: the checkout's models/ folder, or
# keras_parity/models/ where pyproject.toml's package-dir puts it in the wheel (and images.py in
# an image's build context).
MODELS = ROOT / "models" if CHECKOUT else PACKAGE / "models"
NOISE_FILE = MODELS / "noise.json"
LOCKS = ROOT / "requirements" if CHECKOUT else PACKAGE / "requirements"

HOME = ROOT if CHECKOUT else Path(os.environ.get("KERAS_PARITY_HOME", Path.home() / ".cache" / "keras-parity"))
RESULTS = ROOT / "results" if CHECKOUT else Path("results")


def env_root() -> Path:
    """The backend environments' home (KERAS_PARITY_ENVS, read when asked: tests set it)."""
    return Path(os.environ.get("KERAS_PARITY_ENVS", HOME / ".venvs"))


def cache_dir() -> Path:
    """Compiled JAX programs and big models' weights, kept between runs (KERAS_PARITY_CACHE)."""
    return Path(os.environ.get("KERAS_PARITY_CACHE", HOME / ".cache"))

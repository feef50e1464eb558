import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The reference-vs-Keras tests run in this process on the tests environment's backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def parity(tmp_path_factory):
    """`keras_parity parity` on everything, as `nox -s parity` runs it: (process, out, runs), once
    per session (the end-to-end tests read it, the container test compares its bits with it)."""
    from helpers import cli

    from keras_parity.registry.spec import BACKENDS
    from keras_parity.run.launch import load_run

    out = tmp_path_factory.mktemp("parity")
    proc = cli("parity", "--out", str(out))
    runs = {b: load_run(out / "raw", b) for b in BACKENDS}
    return proc, out, runs

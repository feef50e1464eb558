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
    per session (the end-to-end tests read it, the container test compares its bits with it).
    Under pytest-xdist the workers share one run: the first to take the lock runs it into the
    session's common folder, the others wait and read what it wrote."""
    import fcntl
    import json
    import subprocess

    from helpers import cli

    from keras_parity.registry.spec import BACKENDS
    from keras_parity.run.launch import load_run

    common = tmp_path_factory.getbasetemp()
    common = common.parent if os.environ.get("PYTEST_XDIST_WORKER") else common
    out, done = common / "parity-shared", common / "parity-shared.json"
    with open(common / "parity-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            ran = cli("parity", "--out", str(out))
            done.write_text(json.dumps([ran.args, ran.returncode, ran.stdout, ran.stderr]))
    proc = subprocess.CompletedProcess(*json.loads(done.read_text()))
    runs = {b: load_run(out / "raw", b) for b in BACKENDS}
    return proc, out, runs


def pytest_addoption(parser):
    """Options of the generated-model tests (tests/test_generated_models.py)."""
    group = parser.getgroup("generated models")
    group.addoption(
        "--gen-seed",
        type=int,
        default=None,
        help="explore generated graphs with Hypothesis from this seed, shrinking any failure "
        "(or KERAS_PARITY_GEN_SEED); without it the draws are derandomized",
    )
    group.addoption(
        "--gen-examples",
        type=int,
        default=None,
        help="how many graphs Hypothesis draws (or KERAS_PARITY_GEN_EXAMPLES; default 10, not shrunk)",
    )
    group.addoption(
        "--gen-models",
        type=int,
        default=None,
        help="how many models the slow command-line test generates (or KERAS_PARITY_GEN_MODELS; default 100)",
    )

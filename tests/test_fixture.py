"""The `keras_parity` fixture as pytest-regressions' fixtures behave: settings put back after
the test, obtained files under pytest's temporary directory, nothing written under CI, and the
tolerance as given. Its tests run in this process (pytester), on the tests' own backend."""

import importlib.metadata
import subprocess

import keras  # noqa: F401  (imported here, not by the first inner run: pytester unloads what a run imports)
import pytest
from helpers import ROOT

from keras_parity import pytest_plugin  # noqa: F401
from keras_parity.golden import regen  # noqa: F401
from keras_parity.run import envs, knobs

pytest_plugins = ["pytester"]
BACKEND = "tensorflow"  # tests/conftest.py's KERAS_BACKEND

USER_TEST = """
import os

import keras
import numpy as np

from keras_parity.run import knobs


def test_dense(keras_parity):
    x = keras.Input((5,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, activation="tanh")(x))
    keras_parity.seed_weights(model)
    given = {k: float(os.environ[k]) for k in ("ATOL", "RTOL") if k in os.environ}
    inputs = np.linspace(-1, 1, 20, dtype="float32").reshape(4, 5) + float(os.environ.get("SHIFT", "0"))
    keras_parity.check(model, inputs, atol=given.get("ATOL"), rtol=given.get("RTOL"))


def test_the_next_one_finds_the_settings_as_they_were():
    assert knobs.current("tensorflow") == BEFORE
"""


@pytest.fixture
def user(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    for k in ("ATOL", "RTOL", "SHIFT"):
        monkeypatch.delenv(k, raising=False)
    pytester.makepyfile(test_user=USER_TEST.replace("BEFORE", repr(knobs.current(BACKEND))))
    installed = any(e.name == "keras_parity" for e in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "keras_parity.pytest_plugin"]

    def run(*args):
        return pytester.runpytest_inprocess(*plugin, "-p", "no:cacheprovider", *args)

    return run


def _goldens(pytester):
    return sorted(str(p.relative_to(pytester.path)) for p in (pytester.path / "test_user").rglob("*") if p.is_file())


def test_settings_are_put_back_after_each_test(user):
    before = knobs.current(BACKEND)
    first = user()  # creates the goldens: a failing test, whose teardown must restore them too
    first.assert_outcomes(failed=1, passed=1)
    again = user()
    again.assert_outcomes(passed=2)
    assert knobs.current(BACKEND) == before


def test_a_mismatch_writes_obtained_outputs_under_pytests_temporary_directory(user, pytester, monkeypatch):
    user().assert_outcomes(failed=1, passed=1)
    made = _goldens(pytester)
    monkeypatch.setenv("SHIFT", "0.25")
    result = user("--basetemp", str(pytester.path / "tmp"))
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    assert "test_dense on tensorflow differs from its goldens (obtained outputs written to " in text
    written = text.split("obtained outputs written to ", 1)[1].split(")", 1)[0]
    assert written.startswith(str(pytester.path / "tmp")) and written.endswith("tensorflow.obtained.npz")
    assert _goldens(pytester) == made  # nothing new in the user's tree


@pytest.mark.parametrize("how", ["CI", "--parity-strict"])
def test_under_ci_a_missing_golden_fails_with_the_command_that_records_it(user, pytester, monkeypatch, how):
    strict = ["--parity-strict"] if how == "--parity-strict" else []
    if how == "CI":
        monkeypatch.setenv("CI", "true")
    result = user(*strict)
    result.assert_outcomes(failed=1, passed=1)
    command = "record them with `KERAS_BACKEND=tensorflow pytest --parity-regen test_user.py::test_dense`"
    assert command in result.stdout.str()
    assert not (pytester.path / "test_user").exists()

    # The goldens recorded, then this backend's snapshot missing: not written under CI either.
    user("--parity-regen").assert_outcomes(failed=1, passed=1)
    (snapshot,) = (pytester.path / "test_user").rglob("tensorflow.npz")
    snapshot.unlink()
    result = user(*strict)
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    assert "test_dense passes on tensorflow but has no tensorflow snapshot" in text
    assert "record it with `KERAS_BACKEND=tensorflow pytest --parity-regen test_user.py::test_dense`" in text
    assert not snapshot.exists()

    monkeypatch.delenv("CI", raising=False)
    user().assert_outcomes(passed=2)  # outside CI a backend's first passing run records its snapshot
    assert snapshot.exists()


def test_atol_and_rtol_of_zero_are_honoured(user, monkeypatch):
    user().assert_outcomes(failed=1, passed=1)
    user().assert_outcomes(passed=2)
    monkeypatch.setenv("ATOL", "0")
    monkeypatch.setenv("RTOL", "0")
    result = user()  # float32 against the float64 reference: not bit for bit
    result.assert_outcomes(failed=1, passed=1)
    assert "atol 0e+00 + rtol 0e+00" in result.stdout.str()


KNOBS_BACK = """
import sys
from keras_parity.run import knobs
before = knobs.current(sys.argv[1])
knobs.after_import(sys.argv[1], threads=False)
changed = knobs.current(sys.argv[1])
knobs.restore(sys.argv[1], before)
assert changed != before, changed
assert knobs.current(sys.argv[1]) == before, (knobs.current(sys.argv[1]), before)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_other_backends_settings_are_put_back_too(backend):
    """torch.use_deterministic_algorithms(True) above all, which the fixture's check() turns on."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [str(envs.ensure(backend)), "-c", KNOBS_BACK, backend], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

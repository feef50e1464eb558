"""The watch list: each reproducer's state on each backend against golden/watch.json; a case
that stops reproducing (a planted fix of Keras) or starts where it was absent fails, named
with the releases it was seen on, until the file is updated."""

import json
import subprocess
from types import SimpleNamespace

import pytest
from helpers import ROOT

from keras_parity.registry.spec import BACKENDS
from keras_parity.run import envs
from keras_parity.run.launch import child_env
from keras_parity.watch import CASES
from keras_parity.watch import judge as watched

EXPECTED = watched.load()


def _run(backend: str, seen: dict, versions=None):
    return SimpleNamespace(watch=seen, versions=versions or {"keras": "3.15.1", backend: "1.0"})


def test_the_checked_in_file_has_every_case_on_every_backend_and_ten_are_present():
    cases = EXPECTED["cases"]
    assert set(cases) == {c.id for c in CASES}
    for case, entry in cases.items():
        assert set(entry["backends"]) == set(BACKENDS), case
        assert all(
            s["state"] in ("present", "absent") and s["seen"].startswith("keras=") for s in entry["backends"].values()
        )
    present = {c for c, e in cases.items() if any(s["state"] == "present" for s in e["backends"].values())}
    assert len(present) == 10
    assert cases["float64-matmul-in-float32"]["upstream"].endswith("/issues/23704")


def test_every_state_change_is_a_failure_named_with_its_releases():
    expected = {
        "cases": {
            "sparsemax-cumulative-sum": {"backends": {"jax": {"state": "present"}, "torch": {"state": "present"}}},
            "float64-tanh-in-float32": {"backends": {"jax": {"state": "present"}, "torch": {"state": "absent"}}},
        }
    }
    runs = {
        "jax": _run("jax", {"sparsemax-cumulative-sum": {"present": False, "measure": 0.0, "detail": "sums to one"},
                            "float64-tanh-in-float32": {"present": True, "measure": 5e-8, "detail": "float32"}},
                    {"keras": "3.16.0", "jax": "0.12.0.1"}),
        "torch": _run("torch", {"sparsemax-cumulative-sum": {"present": None, "error": "AttributeError: gone"},
                                "float64-tanh-in-float32": {"present": True, "measure": 4e-8, "detail": "float32"},
                                "float32-constant-gelu": {"present": False, "measure": 0.0, "detail": "exact"}}),
    }  # fmt: skip
    status = {(r.case, r.backend): r.status for r in watched.judge(runs, expected)}
    assert status == {
        ("sparsemax-cumulative-sum", "jax"): "fixed",
        ("sparsemax-cumulative-sum", "torch"): "error",
        ("float64-tanh-in-float32", "jax"): "still present",
        ("float64-tanh-in-float32", "torch"): "appeared",
        ("float32-constant-gelu", "torch"): "unrecorded",
    }
    line = watched.line(watched.judge(runs, expected), expected)
    assert line.startswith("2 known upstream discrepancies: 1 still present; FAIL ")
    assert "float64-tanh-in-float32 appeared on torch (keras=3.15.1;torch=1.0)" in line
    assert "sparsemax-cumulative-sum fixed on jax (keras=3.16.0;jax=0.12.0.1)" in line
    assert "nox -s watch -- --update" in line
    # --update records what was seen; a reproducer that raised keeps its recorded state
    again = watched.updated(watched.judge(runs, expected), expected)
    assert again["cases"]["sparsemax-cumulative-sum"]["backends"]["jax"]["state"] == "absent"
    assert again["cases"]["sparsemax-cumulative-sum"]["backends"]["torch"] == {"state": "present"}
    assert again["cases"]["float64-tanh-in-float32"]["backends"]["torch"]["seen"] == "keras=3.15.1;torch=1.0"
    assert {r.status for r in watched.judge(runs, again)} >= {"still absent", "still present"}


# sparsemax as Keras documents it (the fix of keras-team/keras#23425), planted in the process
PLANTED_FIX = """
import json, keras, numpy as np
from keras_parity import watch

def sparsemax(x, axis=-1):
    z = np.sort(np.asarray(keras.ops.convert_to_numpy(x)), axis=axis)[..., ::-1]
    k = np.arange(1, z.shape[axis] + 1)
    support = 1 + k * z > np.cumsum(z, axis=axis)
    kz = support.sum(axis=axis, keepdims=True)
    tau = (np.take_along_axis(np.cumsum(z, axis=axis), kz - 1, axis=axis) - 1) / kz
    return np.maximum(np.asarray(keras.ops.convert_to_numpy(x)) - tau, 0)

keras.ops.sparsemax = sparsemax
print(json.dumps(watch.observe("torch")))
"""


def test_a_planted_fix_of_keras_flips_its_case_to_fixed_and_nothing_else():
    python = envs.ensure("torch")
    env = {**child_env(), "KERAS_BACKEND": "torch"}
    proc = subprocess.run([str(python), "-c", PLANTED_FIX], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    results = watched.judge({"torch": _run("torch", seen, {"keras": "3.15.1", "torch": "2.13.0+cpu"})}, EXPECTED)
    moved = [(r.case, r.status) for r in results if r.failed]
    assert moved == [("sparsemax-cumulative-sum", "fixed")]
    assert seen["sparsemax-cumulative-sum"]["detail"].startswith("sparsemax([1, 0.9, -1]) = [0.55, 0.45, 0.0]")
    line = watched.line(results, EXPECTED)
    assert "FAIL sparsemax-cumulative-sum fixed on torch (keras=3.15.1;torch=2.13.0+cpu)" in line


@pytest.mark.slow
def test_parity_prints_the_watch_line_and_its_runs_carry_the_observations(parity):
    proc, _, runs = parity
    assert "10 known upstream discrepancies: 10 still present" in proc.stdout
    for b in BACKENDS:
        assert set(runs[b].watch) == {c.id for c in CASES}
    # the same observations against a file that expected one case absent: it appeared, and fails
    flipped = json.loads(json.dumps(EXPECTED))
    flipped["cases"]["float32-constant-gelu"]["backends"]["tensorflow"]["state"] = "absent"
    moved = [(r.case, r.backend, r.status) for r in watched.judge(runs, flipped) if r.failed]
    assert moved == [("float32-constant-gelu", "tensorflow", "appeared")]


def test_the_watch_command_runs_a_backend_and_agrees_with_the_file():
    from helpers import cli

    proc = cli("watch", "--backend", "torch")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    torch = {c for c, e in EXPECTED["cases"].items() if e["backends"]["torch"]["state"] == "present"}
    assert f"{len(torch)} known upstream discrepancies: {len(torch)} still present" in proc.stdout
    assert "float64-matmul-in-float32" in proc.stdout and "FAIL" not in proc.stdout


def test_the_release_a_case_appeared_in_is_the_first_of_an_unbroken_run_of_present():
    from keras_parity.watch.releases import since, strip

    assert since({"3.10.0": None, "3.11.3": False, "3.12.4": True, "3.13.2": True}) == "3.12.4"
    assert since({"3.10.0": True, "3.11.3": False, "3.12.4": True}) == "3.12.4"  # gone once: from its return
    assert since({"2.18.1": "conflict: keras 3.10", "2.19.1": True, "2.20.0": True}) == "2.19.1"  # a cell not run
    assert since({"3.10.0": False, "3.11.3": False}) == ""
    assert strip({"3.10.0": None, "3.11.3": False, "3.12.4": True, "3.13.2": "uninstallable: x"}) == (
        "3.10.0E 3.11.3- 3.12.4+ 3.13.2x"
    )

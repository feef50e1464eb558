"""Your own model's tolerance from its own float32 noise, measured when its goldens are made
(the three backends, and again under an ISA cap), as a built-in model's is; --rel-l2 still wins."""

import json
import shutil

import numpy as np
import pytest
from helpers import ROOT, cli

from keras_parity.judge.goldens import read_goldens
from keras_parity.registry import usermodel, usernoise
from keras_parity.registry.noise import MARGIN
from keras_parity.run.record import BackendRun, Provenance

EXAMPLE = ROOT / "examples" / "shapes"


def _run(backend: str, error: float, cap: str | None = None) -> BackendRun:
    want = np.linspace(-1.0, 1.0, 8)
    got = (want + error * np.array([1, -1] * 4)).astype(np.float32)
    run = BackendRun(backend, arrays={"m/inference/predict/output": got})
    run.provenance = Provenance(isa_cap=cap)
    return run


def test_the_noise_is_the_largest_error_of_any_run_and_path():
    reference = {"inference/output": np.linspace(-1.0, 1.0, 8)}
    runs = [_run("jax", 1e-7), _run("torch", 4e-7), _run("jax", 2e-7, cap="avx2")]
    noise = usernoise.measured_noise("m", reference, runs)
    assert noise["rel_l2"] == pytest.approx(4e-7 * np.sqrt(8) / np.linalg.norm(reference["inference/output"]), rel=0.05)
    assert noise["atol"] == pytest.approx(4e-7, rel=0.05)
    assert noise["runs"] == ["jax predict", "torch predict", "jax predict (ISA cap avx2)"]
    tol = usernoise.measured_tol(noise)
    assert (tol.rel_l2, tol.atol) == (MARGIN * noise["rel_l2"], MARGIN * noise["atol"])
    assert "measured when its goldens were made" in tol.why and "--rel-l2" in tol.why


def test_an_exact_run_is_floored_at_float32_rounding():
    reference = {"inference/output": np.ones(4)}
    noise = usernoise.measured_noise("m", reference, [_run("jax", 0.0)])
    assert noise["rel_l2"] == usernoise.U32


def _source(golden_dir, rel_l2=None):
    return usermodel.from_file(EXAMPLE / "shapes.keras", EXAMPLE / "inputs.npz", None, golden_dir, rel_l2)


def test_the_judge_takes_the_measured_tolerance_unless_rel_l2_is_given():
    spec = usermodel.spec(_source(EXAMPLE / "golden"))
    assert spec.tol == usermodel.USER_TOL  # before its goldens are read
    measured = read_goldens("shapes", EXAMPLE / "golden", spec).spec.tol
    noise = json.loads((EXAMPLE / "golden/shapes/reference.json").read_text())["noise"]
    assert measured == usernoise.measured_tol(noise) and measured.rel_l2 < usermodel.USER_TOL.rel_l2 / 50
    given = usermodel.spec(_source(EXAMPLE / "golden", rel_l2=3e-5))
    assert read_goldens("shapes", EXAMPLE / "golden", given).spec.tol.rel_l2 == 3e-5


@pytest.mark.slow
def test_golden_measures_the_noise_and_parity_judges_by_it(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "shapes", ignore=shutil.ignore_patterns("golden"))
    args = ("--model-file", str(tmp_path / "shapes/shapes.keras"), "--inputs", str(tmp_path / "shapes/inputs.npz"))
    made = cli("golden", *args, "--out", str(tmp_path / "g"))
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    noise = json.loads((tmp_path / "shapes/golden/shapes/reference.json").read_text())["noise"]
    assert len(noise["runs"]) == 10 and sum("(ISA cap avx2)" in r for r in noise["runs"]) == 5
    assert usernoise.U32 <= noise["rel_l2"] < 1e-6
    checked = cli("parity", *args, "--out", str(tmp_path / "p"))
    assert checked.returncode == 0, checked.stdout[-2000:]
    cells = json.loads((tmp_path / "p/parity.json").read_text())["cells"]
    assert cells and all(c["tol"]["rel_l2"] == pytest.approx(MARGIN * noise["rel_l2"]) for c in cells)

"""Determinism: a cell run twice in its process and once in a fresh one keeps its bits, or is
flagged with the knob that fixes it."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

from keras_parity.diagnose import apply
from keras_parity.diagnose.determinism import judge
from keras_parity.judge.compare import CellResult
from keras_parity.run.record import BackendRun, ModelRecord

ROOT = Path(__file__).resolve().parent.parent


def _run(backend, value, twice_ulp):
    run = BackendRun(backend, arrays={"m/c/predict/output": np.float32([value, 2.0])})
    run.models = {"m": ModelRecord(twice_max_ulp={"c/predict": twice_ulp})}
    return run


def test_moved_bits_are_flagged_with_the_knob_and_kept_bits_are_not():
    one_ulp = np.nextafter(np.float32(1.0), np.float32(2.0))
    cells = {b: CellResult("m", "c", b, "cpu", "predict") for b in ("jax", "torch", "tensorflow")}
    first = {"jax": _run("jax", 1.0, 0), "torch": _run("torch", 1.0, 3), "tensorflow": _run("tensorflow", 1.0, 0)}
    fresh = {"jax": _run("jax", one_ulp, 0), "torch": _run("torch", 1.0, 0), "tensorflow": _run("tensorflow", 1.0, 0)}
    found = judge(list(cells.values()), first, fresh)
    assert all(c.status == "pass" and not c.findings for c in cells.values())  # judge changes no cell
    cells = {c.backend: c for c in apply(list(cells.values()), found)}
    assert cells["tensorflow"].determinism == "deterministic" and cells["tensorflow"].status == "pass"
    assert cells["jax"].status == "fail" and "fresh process 1 ULP" in cells["jax"].problems[0]
    assert "xla_cpu_multi_thread_eigen=false" in cells["jax"].problems[0]
    assert cells["torch"].status == "fail" and "same process 3 ULP" in cells["torch"].problems[0]
    assert "torch.use_deterministic_algorithms(True)" in cells["torch"].problems[0]


def test_a_fresh_run_that_failed_fails_its_cells_naming_the_knob_and_a_twin_is_only_noted():
    cells = [CellResult("m", "c", b, "cpu", "predict") for b in ("jax", "torch", "torch-native")]
    first = {b: _run(b, 1.0, 0) for b in ("jax", "torch", "torch-native")}
    crashed = BackendRun("jax", error="runner exited with code -9: Killed")
    broken = _run("torch", 1.0, 0)
    broken.arrays, broken.errors = {}, {"m": "RuntimeError: out of memory"}
    cells = apply(cells, judge(cells, first, {"jax": crashed, "torch": broken}))
    jax, torch, twin = cells
    assert jax.status == "fail" and "fresh-process run failed (runner exited with code -9: Killed)" in jax.problems[0]
    assert "xla_cpu_multi_thread_eigen=false" in jax.problems[0]
    assert torch.status == "fail" and "(RuntimeError: out of memory)" in torch.problems[0]
    assert "torch.use_deterministic_algorithms(True)" in torch.problems[0]
    assert twin.status == "pass" and twin.determinism == "unchecked" and twin.findings[0].note


@pytest.mark.slow
def test_every_cell_keeps_its_bits_in_process_and_across_processes(tmp_path):
    proc = cli("parity", "--determinism", "--model", "bn_mlp", "--model", "lstm", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    cells = json.loads((tmp_path / "parity.json").read_text())["cells"]
    # forward: 8 cases on 2 paths (tensorflow, jax) or 1 (torch); training: 5 cases x 3 backends
    assert len(cells) == 16 + 2 * 9 and all(c["determinism"] == "deterministic" for c in cells)

"""Cells are built once and the judge writes nothing: the obtained outputs of failing cells are
what the parity pipeline writes beside the goldens (golden.write_obtained), on the recorded
runs of tests/data/master."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_parity import golden
from keras_parity.judge.compare import CellResult, Finding, OutputMetrics
from keras_parity.judge.evaluate import evaluate, obtained_outputs
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run.launch import load_run

BUILTIN = builtin_registry()
MASTER = Path(__file__).parent / "data" / "master"
MODELS = ["linear", "bn_mlp", "lstm"]
RUNS = {"tensorflow": False, "jax": False, "torch": False, "torch-native": True}


@pytest.fixture(scope="module")
def runs():
    return {b: load_run(MASTER / "raw", b, twin=twin) for b, twin in RUNS.items()}


@pytest.fixture
def goldens(tmp_path):
    """The master's goldens, with a stale obtained file of lstm on jax, whose cells all pass."""
    root = tmp_path / "golden"
    shutil.copytree(MASTER / "golden", root)
    golden.write_npz(golden.obtained_path("lstm", "jax", root), {"lstm/predict/output": np.zeros(2, np.float32)})
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_cell_cannot_be_changed_after_it_is_built():
    metrics = OutputMetrics(max_abs=0.0, max_rel=0.0, rel_l2=0.0, nan=0, inf=0)
    cell = CellResult("m", "c", "jax", "cpu", "predict", findings=(Finding("compare", "off"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.status = "fail"
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.ulp_max = 1
    with pytest.raises(AttributeError):
        cell.findings.append(Finding("localize", "here"))
    assert not any(hasattr(cell, name) for name in ("fail", "note", "add"))


def test_evaluate_writes_nothing_beside_the_goldens(runs, goldens):
    before = _files(goldens)
    cells = evaluate(runs, MODELS, BUILTIN, goldens)
    assert any(c.status == "fail" for c in cells)  # failing cells whose outputs a writer would keep
    assert _files(goldens) == before  # no obtained file written, the stale one left for the pipeline


def test_the_pipelines_writer_keeps_the_outputs_of_failing_cells_only_and_removes_stale_ones(runs, goldens):
    cells = evaluate(runs, MODELS, BUILTIN, goldens)
    golden.write_obtained(obtained_outputs(runs, cells, BUILTIN, goldens))
    written = sorted(str(p.relative_to(goldens)) for p in goldens.rglob("*.obtained.npz"))
    assert written == ["bn_mlp/jax.obtained.npz", "bn_mlp/tensorflow.obtained.npz", "bn_mlp/torch.obtained.npz"]
    failed = [c for c in cells if c.model == "bn_mlp" and c.backend == "jax" and c.status != "pass"]
    assert {(c.case, c.path) for c in failed} == {("inference", "predict"), ("train_adam", "fit")}
    kept = golden.read_npz(golden.obtained_path("bn_mlp", "jax", goldens))
    want = {
        golden.key(c.case, c.path, k): v for c in failed for k, v in runs["jax"].cell("bn_mlp", c.case, c.path).items()
    }
    assert sorted(kept) == sorted(want) and all(np.array_equal(kept[k], want[k]) for k in want)
    assert not golden.obtained_path("lstm", "jax", goldens).exists()  # its cells pass: the stale file went


def test_write_obtained_writes_arrays_and_removes_the_file_of_an_empty_entry(tmp_path):
    stale, failing = tmp_path / "m" / "jax.obtained.npz", tmp_path / "m" / "torch.obtained.npz"
    golden.write_npz(stale, {"c/predict/output": np.ones(3, np.float32)})
    golden.write_obtained({stale: {}, failing: {"c/predict/output": np.zeros(3, np.float32)}})
    assert not stale.exists() and golden.read_npz(failing)["c/predict/output"].tolist() == [0.0, 0.0, 0.0]

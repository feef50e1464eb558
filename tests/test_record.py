"""The run record: what the writer puts in a run folder the reader gives back, field for field,
from the backend runner's, the twins runner's and the pytest plugin's records alike."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from keras_parity.diagnose import Diagnosed, apply
from keras_parity.judge.compare import CellResult, CellStatus, Finding
from keras_parity.run import envs
from keras_parity.run.launch import load_run
from keras_parity.run.record import BackendRun, BuilderRecord, ModelRecord, Provenance, read_run, summary, write_run

MASTER = Path(__file__).parent / "data" / "master" / "raw"


def _full_run() -> BackendRun:
    """A record with every field set away from its default."""
    builder = BuilderRecord(
        "c" * 16, "w" * 16, [["dense/kernel", [2, 3]]], {"dw/kernel": 9}, False, ["dense/kernel"], [None, 3],
        {"keras.layers.Dense": {"use_bias": True}}, {"name": "m", "layers": []},
    )  # fmt: skip
    model = ModelRecord(
        {"b": builder}, {"inference": "i" * 16}, {"inference/predict": 0.5}, {"inference/predict": 2},
        {"steps": 3}, ["inference"], 1.25,
    )  # fmt: skip
    provenance = Provenance({"keras": "3.0"}, "gpu", "A100", {"model": "A100"}, "Xeon", {"model_name": "Xeon"},
                            "avx2", "gpu-abc", "1234-dirty")  # fmt: skip
    return BackendRun(
        "jax",
        arrays={"m/inference/predict/output": np.arange(3, dtype=np.float32)},
        layers={"m/inference/dense": np.ones(2)},
        sketches={"m/inference/dense": np.zeros(4)},
        feeds={"m/inputs/inference/x": np.ones((1, 2))},
        planted={"p1/arrays/m/inference/eager/output": np.full(3, 2.0)},
        twin=True,
        env={"KERAS_BACKEND": "jax"},
        dtype="float32",
        knobs={"default_matmul_precision": "highest"},
        provenance=provenance,
        models={"m": model},
        errors={"other": "RuntimeError: boom", "mine": "mine.npz holds ['x'] but mine takes inputs ['a', 'b']"},
        usage_errors=["mine"],
        no_twin={"lstm": "no twin of lstm"},
        timings={"total": 2.0},
        peak_rss_mb=512.0,
        partial=True,
        watch={"sparsemax-cumulative-sum": {"present": True, "measure": 0.5, "detail": "sums to 0.05"}},
    )


def _same(a: BackendRun, b: BackendRun) -> None:
    for f in dataclasses.fields(BackendRun):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in BackendRun.ARRAYS + ("arrays",):
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), f.name
        else:
            assert x == y, f.name


def test_every_field_of_a_record_comes_back_as_written(tmp_path):
    run = _full_run()
    # The test itself: nothing left at its default but what is not written and the stops before
    # importing (whose runs have no outputs: the next test).
    for f in dataclasses.fields(BackendRun):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name not in ("error", "wall", "backend", "import_error", "device_error"):
            assert getattr(run, f.name) != default, f.name
    write_run(tmp_path, run)
    _same(read_run(tmp_path, "jax"), run)


def test_a_run_that_stopped_before_importing_reads_back_its_error(tmp_path):
    write_run(tmp_path, BackendRun("torch", env={"KERAS_BACKEND": "torch"}, import_error="ImportError: no torch"))
    run = load_run(tmp_path, "torch")
    assert run.import_error == "ImportError: no torch" and run.provenance is None and not run.arrays
    assert run.error.startswith("import failed: ImportError: no torch")
    write_run(tmp_path, BackendRun("jax", device_error="a GPU was asked for"))
    assert read_run(tmp_path, "jax").device_error == "a GPU was asked for"


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch", "torch-native"])
def test_recorded_runs_are_written_back_key_for_key(tmp_path, backend):
    run = read_run(MASTER, backend)
    write_run(tmp_path, run)
    assert json.loads((tmp_path / f"{backend}.json").read_text()) == json.loads(
        (MASTER / f"{backend}.json").read_text()
    )
    assert summary(run) == {
        **{k: v for k, v in json.loads((MASTER / f"{backend}.json").read_text()).items() if k != "models"},
        "error": None,
        "wall_s": 0.0,
    }


def test_the_twins_runner_writes_a_record_the_reader_reads(tmp_path, monkeypatch):
    from keras_parity.twins import runner

    monkeypatch.setitem(sys.modules, "keras_parity.twins.torch_native", None)  # its library missing
    with mock.patch.dict(os.environ):  # the runner sets its process's backend settings: not this one's
        assert runner.main(["--twin", "torch-native", "--out", str(tmp_path), "--model", "linear"]) == 2
    run = read_run(tmp_path, "torch-native")
    assert run.twin and run.import_error and run.backend == "torch-native" and run.env
    write_run(tmp_path / "again", run)
    _same(read_run(tmp_path / "again", "torch-native"), run)


PRODUCE = """
import sys, types
import keras, numpy as np
sys.modules["pytest"] = types.SimpleNamespace(fixture=lambda f: f)  # the backend environment has no pytest
from keras_parity.pytest_plugin import _produce
from keras_parity.run.record import write_run
x = keras.Input((3,), name="x")
graph = keras.Model(x, keras.layers.Dense(2, name="d")(x))
run = _produce(graph, {"x": np.ones((2, 3), np.float32)}, "t", "jax")
write_run(sys.argv[1], run)
print(json.dumps(run.as_json()))
"""


def test_the_pytest_plugins_record_is_read_back_identically(tmp_path):
    python = envs.env_root() / "jax" / "bin" / "python"
    if not python.exists():
        pytest.skip("no jax environment")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [str(python), "-c", "import json" + PRODUCE, str(tmp_path)], env=env, capture_output=True, text=True, check=True
    )
    produced, run = json.loads(done.stdout.splitlines()[-1]), read_run(tmp_path, "jax")
    assert run.as_json() == produced and run.models["t"].builders["t"].defaults and run.platform
    assert sorted(run.arrays) == ["t/inference/eager/output", "t/inference/predict/output"]
    assert sorted(run.feeds) == ["t/inputs/inference/x", "t/weights/d/bias", "t/weights/d/kernel"]


def _cells() -> list[CellResult]:
    return [CellResult("m", "c", b, "cpu", "predict") for b in ("jax", "torch")]


def test_findings_applied_in_either_order_give_the_same_cells():
    jax, torch = (c.id for c in _cells())
    found = [
        Diagnosed(jax, Finding("determinism", "bits moved"), determinism="1 ULP"),
        Diagnosed(torch, Finding("localize", "where", note=True)),
        Diagnosed(jax, rounding="rounding", float64_rel_l2=1e-9),
    ]
    cells = _cells()
    one, other = apply(cells, found), apply(cells, found[::-1])
    for a, b in zip(one, other):
        assert (a.status, a.determinism, a.rounding, a.float64_rel_l2) == (
            b.status,
            b.determinism,
            b.rounding,
            b.float64_rel_l2,
        )
        assert sorted(a.problems) == sorted(b.problems)
    assert one[0].status == CellStatus.FAIL and one[0].rounding == "rounding" and one[1].status == "pass"
    assert all(c.status == "pass" and not c.findings for c in cells)  # the judged cells stay as built


def test_an_errored_cell_stays_an_error_whatever_is_found():
    cell = dataclasses.replace(_cells()[0], status=CellStatus.ERROR)
    (got,) = apply([cell], [Diagnosed(cell.id, Finding("rounding", "semantic"))])
    assert got.status == "error" and got.problems == ["semantic"]
    assert json.dumps(got.as_dict()["status"]) == '"error"'

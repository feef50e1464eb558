"""Drift: the matrix, real cells in pinned environments, the history's guarantees, the report.

The real cells hold jax at 0.10.2 and move keras (small wheels, one jaxlib download) so they
fit in CI; the checked-in history was made the same way over the whole matrix.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_parity.drift import cellenv, driver, history, matrix, report
from keras_parity.drift.matrix import Cell, Matrix
from keras_parity.registry.builtin import builtin_registry

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SMALL = Matrix(
    keras=("3.14.1", "3.15.1"),
    releases={"jax": ("0.10.2",), "torch": ("2.13.0+cpu",), "tensorflow": ("2.21.0",)},
    packages={"jax": "jax[cpu]", "torch": "torch", "tensorflow": "tensorflow-cpu"},
    resolved_at="2026-11-22T00:00:00Z",
    window=2,
)


def test_the_checked_in_matrix_has_the_promised_releases():
    m = matrix.load()
    assert m.keras[0] == "3.10.0" and m.keras[-1] == "3.15.1" and len(m.keras) == 6
    assert [m.releases["tensorflow"][0], m.releases["tensorflow"][-1]] == ["2.18.1", "2.21.0"]
    # jax 0.11.2 and 0.12.0.1 need Python >= 3.12: their cells run in the Python 3.13 image
    assert [m.releases["jax"][0], *m.releases["jax"][-3:]] == ["0.6.2", "0.10.2", "0.11.2", "0.12.0.1"]
    assert m.releases["torch"] == ("2.13.0+cpu", "2.14.1", "2.15.0")
    backends = ("tensorflow", "jax", "torch")
    assert len(m.cells(backends)) == 2 * (2 + 2 + 2)
    assert len(m.cells(backends, full=True)) == 6 * (4 + 7 + 3)
    both = m.cells(backends, axes=("keras", "library"))
    assert len(both) == 3 * 6 + (4 + 7 + 3) - 3 and Cell("jax", "3.15.1", "0.9.2") in both
    newest = both.index(Cell("torch", "3.15.1", "2.15.0"))  # after both of its neighbours
    assert both.index(Cell("torch", "3.15.1", "2.14.1")) < newest > both.index(Cell("torch", "3.14.1", "2.15.0"))
    assert m.parse_cell(["keras=3.14.1", "jax=0.9.2"]) == Cell("jax", "3.14.1", "0.9.2")
    assert m.parse_cell(["jax=0.9.2"]).keras == "3.15.1"


@pytest.mark.parametrize(
    "words, message",
    [
        (["keras3.14"], "cannot read 'keras3.14' as a pin"),
        (["mxnet=1.9"], "unknown library 'mxnet'"),
        (["jax=0.9.2", "torch=2.14.1"], "exactly one backend library"),
    ],
)
def test_bad_cells_are_one_line_errors(words, message):
    with pytest.raises(matrix.MatrixError, match=message):
        matrix.load().parse_cell(words)


def _row(**kw):
    row = {c: "" for c in history.COLUMNS}
    row |= {"recorded": "2026-11-22", "platform": "cpu-x", "device": "cpu", "backend": "jax", "keras": "3.15.1"}
    row |= {"library_version": "0.10.2", "model": "linear", "case": "c", "path": "eager", "verdict": "pass"}
    return row | kw


def test_history_appends_without_duplicates_and_refuses_corrupt_files(tmp_path):
    path = tmp_path / "history.csv"
    assert history.append([_row(rel_l2="1.0e-07")], path) == 1
    assert history.append([_row(rel_l2="2.0e-07")], path) == 0  # same cell and model: no duplicate
    assert history.append([_row(model="cnn")], path) == 1
    assert [r["model"] for r in history.read(path)] == ["linear", "cnn"]
    good = path.read_bytes()
    for damage, line in ((b"2026,oops\n", 4), (good.splitlines()[1].replace(b"pass", b"maybe") + b"\n", 4)):
        path.write_bytes(good + damage)
        with pytest.raises(history.HistoryError, match=rf"history.csv:{line}: .*restore the file with git"):
            history.read(path)
        with pytest.raises(history.HistoryError):
            history.append([_row(model="lstm")], path)
        assert path.read_bytes() == good + damage  # never overwritten
    path.write_bytes(good[:-5])
    with pytest.raises(history.HistoryError, match="cut short"):
        history.read(path)


def test_a_corrupt_history_stops_the_drift_command_before_any_cell(tmp_path):
    broken = ROOT / "golden" / "drift" / "history.csv"
    saved = broken.read_bytes() if broken.exists() else None
    try:
        broken.parent.mkdir(parents=True, exist_ok=True)
        broken.write_bytes((saved or b"") + b"not,a,row\n")
        before = broken.read_bytes()
        proc = subprocess.run(
            [sys.executable, "-m", "keras_parity", "drift", "keras=3.15.1", "jax=0.10.2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2
        assert "history.csv:" in proc.stderr and "restore the file with git" in proc.stderr
        assert broken.read_bytes() == before
    finally:
        if saved is None:
            broken.unlink()
        else:
            broken.write_bytes(saved)


@pytest.fixture(scope="module")
def drift_env(tmp_path_factory):
    """Real cells, their environments in a private folder (uv's cache is shared)."""
    envs = tmp_path_factory.mktemp("drift-envs")
    old = os.environ.get("KERAS_PARITY_ENVS")
    os.environ["KERAS_PARITY_ENVS"] = str(envs)
    yield tmp_path_factory.mktemp("drift")
    if old is None:
        del os.environ["KERAS_PARITY_ENVS"]
    else:
        os.environ["KERAS_PARITY_ENVS"] = old


def test_events_name_the_release_where_bits_changed_and_its_level(tmp_path):
    import numpy as np

    from keras_parity import golden

    def snap(keras, version, lstm):
        arrays = {"linear/c/eager/y": np.float32([1.0, 2.0]), "lstm/c/eager/y": np.float32(lstm)}
        golden.write_npz(driver.snapshot_path(Cell("jax", keras, version), "cpu-x", tmp_path), arrays)

    snap("3.14.1", "0.10.2", [1.0])
    snap("3.15.1", "0.9.2", [1.0])
    snap("3.15.1", "0.10.2", [np.nextafter(np.float32(1.0), np.float32(2.0))])  # one ULP
    rows = [
        _row(model=m, keras=k, library_version=v, rel_l2="1.0e-07", tol_rel_l2="1e-05")
        for m in ("linear", "lstm")
        for k, v in (("3.14.1", "0.10.2"), ("3.15.1", "0.9.2"), ("3.15.1", "0.10.2"))
    ]
    rows[-1] |= {"verdict": "fail", "rel_l2": "3.0e-02"}
    evs = {(e["axis"], e["release"], e["cell"]): e for e in report.events(rows, tmp_path)}
    assert set(evs) == {("keras", "3.15.1", "lstm/c/eager"), ("jax", "0.10.2", "lstm/c/eager")}
    assert evs[("keras", "3.15.1", "lstm/c/eager")]["max_ulp"] == 1
    assert evs[("jax", "0.10.2", "lstm/c/eager")]["level"] == "exceeds tolerance"
    assert evs[("jax", "0.10.2", "lstm/c/eager")]["from"] == "0.9.2"


def test_bisect_names_the_keras_release_that_changed_torch_lstm(drift_env):
    """The history shows torch's LSTM bits changing between keras 3.13.2 and 3.14.1."""
    from keras_parity.drift.bisect import bisect

    root = drift_env / "bisect"
    found = bisect(
        matrix.load(),
        "keras",
        "3.13.2",
        "3.14.1",
        ["lstm", "linear"],
        drift_env / "scratch",
        registry=BUILTIN,
        held=Cell("torch", "3.15.1", "2.13.0+cpu"),
        root=root,
        history_path=root / "history.csv",
        log=lambda *a: None,
    )
    assert found["linear"] is None
    assert found["lstm"][:2] == ("3.14.0", "3.13.2") and found["lstm"][2] > 0
    assert {r["keras"] for r in history.read(root / "history.csv")} == {"3.13.2", "3.14.0", "3.14.1"}


def test_real_cells_record_rows_neighbours_and_failures_then_resume(drift_env, monkeypatch):
    root, hist, logs = drift_env / "golden", drift_env / "golden" / "history.csv", []
    cells = [Cell("jax", "3.14.1", "0.10.2"), Cell("jax", "3.15.1", "0.10.2"), Cell("jax", "3.15.1", "0.99.0")]
    cells.append(Cell("tensorflow", "3.15.1", "2.10.0"))  # no wheels for Python 3.11
    real = driver._execute

    def interrupted(m, cell, *a, **kw):  # the run is stopped while the second cell runs
        if cell.keras == "3.15.1":
            raise KeyboardInterrupt
        return real(m, cell, *a, **kw)

    monkeypatch.setattr(driver, "_execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        driver.run_cells(
            SMALL,
            cells,
            ["linear"],
            drift_env / "scratch",
            registry=BUILTIN,
            history_path=hist,
            root=root,
            log=logs.append,
        )
    first = hist.read_bytes()
    assert {r["keras"] for r in history.read(hist)} == {"3.14.1"}
    monkeypatch.setattr(driver, "_execute", real)

    driver.run_cells(
        SMALL, cells, ["linear"], drift_env / "scratch", registry=BUILTIN, history_path=hist, root=root, log=logs.append
    )
    assert hist.read_bytes().startswith(first)  # rows already written stay as they were
    rows = history.read(hist)
    by = {(r["backend"], r["keras"], r["library_version"]): r for r in rows}
    assert by[("jax", "3.14.1", "0.10.2")]["verdict"] == "pass"
    newer = [r for r in rows if r["keras"] == "3.15.1" and r["backend"] == "jax" and r["model"] == "linear"]
    assert newer and all(r["prev_keras"] == "3.14.1" and r["same_bits_prev_keras"] in ("yes", "no") for r in newer)
    assert all(float(r["rel_l2"]) < float(r["tol_rel_l2"]) for r in newer)
    assert "keras=3.15.1" in newer[0]["versions"] and "jaxlib=0.10.2" in newer[0]["versions"]
    assert by[("jax", "3.15.1", "0.99.0")]["verdict"] == "no-such-release"
    assert "0.99.0" in by[("jax", "3.15.1", "0.99.0")]["reason"]
    assert by[("tensorflow", "3.15.1", "2.10.0")]["verdict"] == "uninstallable"
    assert "cp311" in by[("tensorflow", "3.15.1", "2.10.0")]["reason"]

    logs.clear()  # a rerun of the same cells: nothing installed, nothing run, no row added
    before = hist.read_bytes()
    assert (
        driver.run_cells(
            SMALL, cells, ["linear"], drift_env, registry=BUILTIN, history_path=hist, root=root, log=logs.append
        )
        == []
    )
    assert hist.read_bytes() == before
    assert not any("installing" in line for line in logs)
    assert sum("in the history already" in line for line in logs) == len(cells)


def test_import_failure_is_recorded_and_the_cache_is_bounded(drift_env):
    m = Matrix(**{**SMALL.__dict__, "keras": ("3.0.0",)})
    with pytest.raises(cellenv.CellFailure) as info:
        cellenv.ensure(m, Cell("jax", "3.0.0", "0.10.2"), log=lambda *a: None)
    assert info.value.kind == "import-error" and "Error" in info.value.reason
    sizes = cellenv.usage()
    assert len(sizes) >= 2 and all(mb > 10 for _, _, mb in sizes)  # the good cells of the tests above
    assert not any("3.0.0" in label for _, label, _ in sizes)  # a failed environment is not kept
    envs = Path(os.environ["KERAS_PARITY_ENVS"]) / "drift"
    for age, (k, _, _) in enumerate(sizes):  # the first listed is the least recently used
        os.utime(envs / k / cellenv.STAMP, (1e9 + age, 1e9 + age))
    total = sum(mb for _, _, mb in sizes)
    left = cellenv.prune(set(), limit_gb=(total - 1) / 1e3, log=lambda *a: None)
    assert [k for k, _, _ in cellenv.usage()] == [k for k, _, _ in sizes[1:]]
    assert left < total


def test_report_renders_plots_and_events_from_the_checked_in_history(tmp_path):
    path = history.HISTORY
    assert path.exists(), "golden/drift/history.csv is checked in"
    out = report.write(path, tmp_path / "report.md")
    text = out.read_text()
    for model in {r["model"] for r in history.read(path) if r["model"] != "*"}:
        png = tmp_path / "plots" / f"{model}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{model}.png" in text
    assert "## Numbers changed at" in text
    with open(path) as f:
        assert next(csv.reader(f)) == history.COLUMNS

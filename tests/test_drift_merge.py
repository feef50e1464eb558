"""Drift scale-out without any backend: groups of cells for CI jobs, and the merge of their
result folders into one history, on synthetic rows in the real CSV format."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_parity import golden
from keras_parity.drift import cellenv, driver, groups, history, matrix, merge
from keras_parity.drift.matrix import Cell

ROOT = Path(__file__).resolve().parent.parent


def _row(**kw):
    row = {c: "" for c in history.COLUMNS}
    row |= {"recorded": "2026-11-22", "platform": "cpu-x", "device": "cpu", "backend": "jax", "keras": "3.15.1"}
    row |= {"library_version": "0.10.2", "model": "linear", "case": "c", "path": "eager", "verdict": "pass"}
    row |= {"versions": "jax=0.10.2;keras=3.15.1", "rel_l2": "1.000e-07", "tol_rel_l2": "1e-05"}
    return row | kw


def _folder(path: Path, rows: list[dict], snapshots: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "history.csv").write_bytes(history.serialize(rows))
    for (keras, version), arrays in (snapshots or {}).items():
        golden.write_npz(driver.snapshot_path(Cell("jax", keras, version), "cpu-x", path), arrays)
    return path


A = _row()  # in the checked-in history and again, identical, in a folder
B = _row(model="cnn")  # checked in only
C = _row(keras="3.14.1")  # one folder only
D_OLD = _row(keras="3.13.2", rel_l2="3.000e-07")
D_NEW = _row(keras="3.13.2", rel_l2="4.000e-07", recorded="2026-11-23")  # a rerun, a day later
E_ONE = _row(library_version="0.9.2", rel_l2="5.000e-07")
E_TWO = _row(library_version="0.9.2", rel_l2="6.000e-07")  # same cell, same day, other numbers
F = _row(library_version="0.8.3", model="lstm", verdict="fail", reason="rel L2 above tolerance")


@pytest.fixture
def folders(tmp_path):
    x = {"linear/c/eager/y": np.float32([1, 2])}
    y = {"linear/c/eager/y": np.float32([1, 3])}
    return [
        _folder(tmp_path / "job-1", [A, C, D_OLD], {("3.13.2", "0.10.2"): x}),
        _folder(tmp_path / "job-2", [D_NEW, E_ONE], {("3.13.2", "0.10.2"): y}),
        _folder(tmp_path / "job-3", [E_TWO, F]),
    ]


def _checked_in(root: Path) -> Path:
    return _folder(root, [A, B])


def test_three_folders_merge_into_one_sorted_history_without_duplicates(tmp_path, folders):
    root = _checked_in(tmp_path / "drift")
    count, conflicts = merge.merge(folders, root)
    rows = history.read(root / "history.csv")
    assert count == len(rows) == 6
    ids = [tuple(r[c] for c in merge.ROW_ID) for r in rows]
    assert len(set(ids)) == len(ids)
    assert rows == sorted(rows, key=merge.sort_key)
    assert A in rows and B in rows and C in rows and F in rows
    assert D_NEW in rows and D_OLD not in rows  # the newest recorded wins
    assert E_ONE in rows and E_TWO not in rows  # same day: the first in column order, and said so
    assert conflicts == [
        "conflict: cpu-x cpu keras=3.15.1 jax=0.9.2 linear/c/eager recorded 2026-11-22 with different "
        "rel_l2 in 2 rows; kept the first"
    ]
    snap = golden.read_npz(driver.snapshot_path(Cell("jax", "3.13.2", "0.10.2"), "cpu-x", root))
    assert snap["linear/c/eager/y"].tolist() == [1, 3]  # from the folder whose rows are newer


def test_the_merge_is_byte_identical_whatever_the_order_of_the_folders(tmp_path, folders):
    outputs = set()
    for i, order in enumerate(itertools.permutations(folders)):
        root = _checked_in(tmp_path / f"drift-{i}")
        merge.merge(list(order), root)
        snap = driver.snapshot_path(Cell("jax", "3.13.2", "0.10.2"), "cpu-x", root)
        outputs.add(((root / "history.csv").read_bytes(), snap.read_bytes()))
    assert len(outputs) == 1
    root = _checked_in(tmp_path / "again")
    merge.merge(folders + folders, root)  # a folder named twice adds nothing
    assert (root / "history.csv").read_bytes() == next(iter(outputs))[0]


def test_a_same_day_conflict_keeps_the_checked_in_row(tmp_path):
    root = _folder(tmp_path / "drift", [E_TWO])
    _, conflicts = merge.merge([_folder(tmp_path / "job", [E_ONE])], root)
    assert history.read(root / "history.csv") == [E_TWO]
    assert len(conflicts) == 1 and conflicts[0].endswith("kept the checked-in row")


def test_a_cell_that_could_not_run_gives_way_to_a_later_run(tmp_path):
    failed = _row(model="*", case="*", path="*", verdict="install-failed", reason="no wheel", rel_l2="")
    failed |= {"tol_rel_l2": "", "versions": ""}
    root = _folder(tmp_path / "drift", [failed])
    later = _row(recorded="2026-11-24")
    _, conflicts = merge.merge([_folder(tmp_path / "job", [later, _row(model="cnn", recorded="2026-11-24")])], root)
    assert [r["model"] for r in history.read(root / "history.csv")] == ["cnn", "linear"] and not conflicts
    root = _folder(tmp_path / "drift-2", [failed])
    _, conflicts = merge.merge([_folder(tmp_path / "job-2", [_row()])], root)
    assert [r["model"] for r in history.read(root / "history.csv")] == ["linear"]
    assert conflicts == [
        "conflict: cpu-x cpu keras=3.15.1 jax=0.10.2 recorded 2026-11-22 both as install-failed "
        "and with rows that ran; kept the rows that ran"
    ]


def _misnamed_snapshot(history_csv: Path) -> None:
    """A snapshot copied under a name that says no Keras and no release."""
    snapshot = next((history_csv.parent / "snapshots").glob("*/*/keras-*.npz"))
    snapshot.with_name("keras-bad.npz").write_bytes(snapshot.read_bytes())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_text(p.read_text().replace("pass", "maybe", 1)), r"history.csv:2: verdict 'maybe'"),
        (lambda p: p.write_text(p.read_text()[:-3]), r"history.csv:\d+: last line is cut short"),
        (lambda p: p.write_text("recorded,platform\n"), r"history.csv:1: header is not"),
        (lambda p: p.unlink(), r"job-2: no history.csv; pass folders written by"),
        (_misnamed_snapshot, r"keras-bad.npz: not a snapshot name \(keras-<keras>_jax-<release>.npz\); rename"),
    ],
)
def test_a_malformed_folder_is_refused_and_nothing_is_written(tmp_path, folders, damage, message):
    root = _checked_in(tmp_path / "drift")
    before = (root / "history.csv").read_bytes()
    damage(folders[1] / "history.csv")
    with pytest.raises(history.HistoryError, match=message) as info:
        merge.merge(folders, root)
    assert "\n" not in str(info.value)
    assert str(folders[1]) in str(info.value)
    if "no history.csv" not in message:
        assert "copy the folder again from its job's artifact" in str(info.value)
    assert (root / "history.csv").read_bytes() == before
    assert not (root / "snapshots").exists()  # not even the good folders' snapshots
    assert sorted(p.name for p in root.iterdir()) == ["history.csv"]  # nothing left aside either


def test_groups_cover_every_cell_exactly_once():
    m = matrix.load()
    backends = ("tensorflow", "jax", "torch")
    for cells in (m.cells(backends, full=True), m.cells(backends), m.cells(["jax"], axes=("keras",))):
        for n in (1, 2, 3, 5, 8, len(cells), len(cells) + 3):
            split = groups.split(list(reversed(cells)), n)
            assert len(split) == n
            flat = [c for g in split for c in g]
            assert sorted(flat) == sorted(cells) and len(set(flat)) == len(flat)
            assert max(map(len, split)) - min(map(len, split)) <= 1
            assert split == groups.split(cells, n)  # the order the cells come in does not matter
            assert [groups.select(cells, f"{i}/{n}") for i in range(1, n + 1)] == split


def test_group_listing_is_a_workflow_matrix_keyed_by_the_cells_environments():
    m = matrix.load()
    cells = m.cells(["jax", "torch"])
    listing = groups.listing(cells, len(cells) + 2, lambda c: cellenv.key(m, c))["include"]
    assert len(listing) == len(cells)  # empty groups are left out
    assert {e["key"] for e in listing} == {cellenv.key(m, c) for c in cells}  # one cell: its own key
    assert listing[0]["group"] == f"1/{len(cells) + 2}" and listing[0]["id"] == f"1-of-{len(cells) + 2}"
    two = groups.listing(cells, 2, lambda c: cellenv.key(m, c))["include"]
    assert len({e["key"] for e in two}) == 2 and all(len(e["key"]) == 16 for e in two)


@pytest.mark.parametrize("text", ["0/8", "9/8", "2-8", "x/y", ""])
def test_a_bad_group_is_a_one_line_error(text):
    with pytest.raises(groups.GroupError, match="write it as I/N"):
        groups.parse(text)


def test_list_groups_prints_one_json_line_for_the_workflow():
    proc = subprocess.run(
        [sys.executable, "-m", "keras_parity", "drift", "--full", "--list-groups", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    include = json.loads(lines[0])["include"]
    assert [e["group"] for e in include] == [f"{i}/8" for i in range(1, 9)]
    cells = [label for e in include for label in e["cells"].split(", ")]
    assert len(cells) == len(set(cells)) == len(matrix.load().cells(("tensorflow", "jax", "torch"), full=True))


class _Console:
    def __init__(self):
        self.lines = []

    def print(self, text, **_):
        self.lines.append(text)


def _args(**kw):
    import argparse

    base = dict(cell=[], full=True, backend=None, model=["linear"], axis=None, bisect=None, jobs=1, prune=False)
    users = dict(model_file=None, inputs=None, custom_objects=None, golden_dir=None, rel_l2=None, new=False)
    return argparse.Namespace(**base | users | dict(group=None, list_groups=None, merge=None) | kw)


def test_a_group_runs_its_cells_into_its_own_folder(tmp_path, monkeypatch):
    from keras_parity.commands import drift as drift_command
    from keras_parity.drift import report

    seen = {}
    monkeypatch.setattr(driver, "run_cells", lambda m, cells, models, scratch, **kw: seen.update(kw, cells=cells) or [])
    monkeypatch.setattr(cellenv, "prune", lambda keep, **kw: 0.0)
    monkeypatch.setattr(report, "write", lambda *a, **k: pytest.fail("a group must not rewrite the report"))
    out = tmp_path / "job"
    assert drift_command.run(_args(group="3/8", out=out), _Console()) == 0
    cells = matrix.load().cells(("tensorflow", "jax", "torch"), full=True)
    assert seen["cells"] == groups.split(cells, 8)[2]
    assert seen["history_path"] == out / "history.csv" and seen["root"] == out and seen["also"] == (driver.DRIFT,)
    assert (out / "history.csv").read_bytes() == history.serialize([])  # an empty group still merges


def test_the_merge_command_writes_the_history_and_report_or_nothing(tmp_path, monkeypatch, folders):
    from keras_parity.commands import drift as drift_command

    root = _checked_in(tmp_path / "drift")
    monkeypatch.setattr(driver, "DRIFT", root)
    console = _Console()
    assert drift_command.run(_args(merge=folders), console) == 1  # the same-day conflict
    assert console.lines[0].startswith("[yellow]conflict: ") and "6 rows" in console.lines[-1]
    assert "6 rows" in (root / "report.md").read_text() and (root / "plots" / "linear.png").is_file()
    before = (root / "history.csv").read_bytes()
    (folders[2] / "history.csv").write_text("garbage\n")
    with pytest.raises(history.HistoryError, match="job-3/history.csv:1: header is not .*nothing was written$") as bad:
        drift_command.run(_args(merge=folders), _Console())
    assert bad.value.exit_code == 2 and "\n" not in bad.value.line()
    assert (root / "history.csv").read_bytes() == before

"""A model's golden set is replaced as a whole, a corrupt or half-written one is named in one
line with the exact command that makes it anew, and `--strict-bits` with no snapshot of this
platform is an ERROR. On the recorded runs of tests/data/master and small sets in tmp folders."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keras_parity import golden
from keras_parity.golden import commit
from keras_parity.golden.regen import regenerate
from keras_parity.judge.compare import CellStatus
from keras_parity.judge.evaluate import evaluate
from keras_parity.judge.goldens import read_goldens
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run.launch import load_run

BUILTIN = builtin_registry()
MASTER = Path(__file__).parent / "data" / "master"
REPO = Path(__file__).resolve().parents[1]
OLD = {"reference.npz": b"old npz", "reference.json": b"old json", "graph.json": b"old graph"}
NEW = {"reference.npz": b"new npz", "reference.json": b"new json", "graph.json": b"new graph"}
OTHER_CPU = "snapshots/cpu-other/jax.npz"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _old_set(root: Path) -> Path:
    live = root / "m"
    for rel, data in {**OLD, OTHER_CPU: b"another CPU's bits"}.items():
        (live / rel).parent.mkdir(parents=True, exist_ok=True)
        (live / rel).write_bytes(data)
    return live


def test_a_set_is_replaced_whole_keeping_other_cpus_snapshots_and_dropping_stray_temps(tmp_path):
    live = _old_set(tmp_path)
    (live / ".reference.json.x1.tmp").write_bytes(b"left by a killed writer")
    assert commit.replace_set(live, NEW) == {name: "changed" for name in NEW}
    assert _files(live) == {**NEW, OTHER_CPU: b"another CPU's bits"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left
    assert commit.replace_set(live, NEW) == {}  # unchanged: not touched


def _stop_at(step: int, root: Path, exchange: bool) -> int:
    """A writer replacing the old set by NEW, killed (SIGKILL) at its `step`th step."""
    code = (
        "import sys; from pathlib import Path; from keras_parity.golden import commit\n"
        + ("" if exchange else "commit._exchange = lambda a, b: False\n")
        + f"commit.replace_set(Path({str(root / 'm')!r}), {NEW!r})\n"
    )
    env = {**os.environ, commit.STOP_AT: str(step), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO).returncode


@pytest.mark.parametrize("exchange", [True, False], ids=["one-rename", "two-renames"])
def test_a_writer_killed_at_any_step_leaves_the_old_set_or_the_new_one(tmp_path, exchange):
    seen = set()
    for step in range(1, 8):
        root = tmp_path / str(step)
        _old_set(root)
        code = _stop_at(step, root, exchange)
        live = root / "m"
        half = commit.incomplete(root, "m")
        if half is None:  # the old set or the new one, whole, with the other CPU's snapshot
            got = _files(live)
            assert got in ({**OLD, OTHER_CPU: b"another CPU's bits"}, {**NEW, OTHER_CPU: b"another CPU's bits"})
            seen.add("old" if got["graph.json"] == b"old graph" else "new")
        else:  # between two renames: named, and the next writer puts the old set back first
            assert "folder is missing while the previous set waits in" in half and "\n" not in half
            seen.add("half")
        commit.recover(root, "m")
        assert commit.incomplete(root, "m") is None
        assert sorted(p.name for p in root.iterdir()) == ["m"]  # no stray folder left
        assert _files(live)[OTHER_CPU] == b"another CPU's bits"
        if code == 0:
            break
    assert seen >= {"old", "new"} and (exchange or "half" in seen)


def _master_goldens(tmp_path: Path) -> Path:
    goldens = tmp_path / "golden"
    shutil.copytree(MASTER / "golden", goldens)
    return goldens


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("reference.json", "[]", "is not a valid reference.json (a JSON list, not an object)"),
        ("reference.json", '{"builders": 5}', "is not a valid reference.json ('builders' is not an object of objects)"),
        ("graph.json", '{"builders": 5}', "is not a valid graph.json ('builders' has no config with a list of layers)"),
        ("graph.json", "{not json", "is corrupt"),
        ("reference.npz", "PK\x03\x04 truncated", "is corrupt"),
    ],
)
def test_a_corrupt_or_malformed_golden_is_one_line_with_the_exact_command(tmp_path, name, content, problem):
    goldens = _master_goldens(tmp_path)
    (goldens / "linear" / name).write_text(content)
    g = read_goldens("linear", goldens, BUILTIN["linear"])
    assert g.error is not None and "\n" not in g.error
    assert f"golden file {goldens / 'linear' / name} {problem}" in g.error
    assert g.error.endswith(f"make the set anew with `nox -s golden -- --model linear --golden-dir {goldens}`")
    runs = {"jax": load_run(MASTER / "raw", "jax", twin=False)}
    (cell,) = evaluate(runs, ["linear"], BUILTIN, goldens)  # the whole model: one ERROR cell, no crash
    assert cell.status == CellStatus.ERROR and g.error in cell.findings[0].message


def test_a_half_written_set_is_named_with_the_command_that_finishes_it(tmp_path):
    goldens = _master_goldens(tmp_path)
    (goldens / "linear" / "reference.json").unlink()
    g = read_goldens("linear", goldens, BUILTIN["linear"])
    assert g.error == (
        f"the goldens of linear in {goldens} are half-written (reference.json missing beside reference.npz, "
        f"graph.json); finish them with `nox -s golden -- --model linear --golden-dir {goldens}`"
    )
    (goldens / "linear" / "reference.json").write_text("{}")
    (goldens / "linear" / "layers.npz").write_bytes(golden.npz_bytes({}))  # layer sketches need their graph
    (goldens / "linear" / "graph.json").unlink()
    g = read_goldens("linear", goldens, BUILTIN["linear"])
    assert "half-written (graph.json missing beside reference.npz, reference.json, layers.npz)" in g.error
    (goldens / "linear").rename(goldens / ".linear.old-999999")  # killed between two renames
    g = read_goldens("linear", goldens, BUILTIN["linear"])
    assert "are half-written (its folder is missing while the previous set waits in" in g.error


def test_a_stopped_golden_beside_a_whole_set_is_a_note(tmp_path):
    goldens = _master_goldens(tmp_path)
    (goldens / ".linear.staging-999999").mkdir()  # no such process
    g = read_goldens("linear", goldens, BUILTIN["linear"])
    assert g.error is None and len(g.notes) == 1 and "a stopped `golden` left" in g.notes[0]


def _strict(goldens: Path):
    runs = {"jax": load_run(MASTER / "raw", "jax", twin=False)}
    return evaluate(runs, ["linear"], BUILTIN, goldens, strict_bits=True)


def test_strict_bits_with_this_platforms_snapshot_is_judged_as_before(tmp_path):
    cells = _strict(_master_goldens(tmp_path))
    assert cells and not any(f.kind == "strict-bits" for c in cells for f in c.findings)


@pytest.mark.parametrize("fault", ["missing", "corrupt"])
def test_strict_bits_without_a_usable_snapshot_of_this_platform_is_an_error(tmp_path, fault):
    goldens = _master_goldens(tmp_path)
    snap = goldens / "linear" / "snapshots" / "cpu-x86_64-intel-c44218ee"
    if fault == "missing":  # a new CPU: another platform's snapshot only
        snap.rename(snap.with_name("cpu-x86_64-amd-00000000"))
    else:
        (snap / "jax.npz").write_bytes(b"not a zip")
    cells = _strict(goldens)
    assert cells and all(c.status == CellStatus.ERROR for c in cells)
    line = next(f for f in cells[0].findings if f.kind == "strict-bits").line
    assert line.startswith("--strict-bits has nothing to compare bits with: ")
    assert ("no jax snapshot of this platform" if fault == "missing" else "is corrupt") in line
    assert line.endswith(f"record it with `nox -s golden -- --snapshots-only --model linear --golden-dir {goldens}`")


def test_golden_snapshots_only_writes_over_a_corrupt_snapshot_of_this_platform(tmp_path):
    goldens = _master_goldens(tmp_path)
    snap = goldens / "linear" / "snapshots" / "cpu-x86_64-intel-c44218ee" / "jax.npz"
    snap.write_bytes(b"not a zip")
    (goldens / ".linear.staging-999999").mkdir()  # left by a killed run
    runs = {"jax": load_run(MASTER / "raw", "jax", twin=False)}
    lines: list[str] = []
    assert regenerate(runs, ["linear"], BUILTIN, goldens, log=lines.append, snapshots_only=True) == 0
    assert golden.read_npz(snap)  # readable again
    assert any("is corrupt" in ln and "written anew" in ln for ln in lines)
    assert not (goldens / ".linear.staging-999999").exists()


def test_golden_snapshots_only_on_a_malformed_reference_says_to_make_the_whole_set(tmp_path):
    goldens = _master_goldens(tmp_path)
    (goldens / "linear" / "reference.json").write_text(json.dumps([]))
    runs = {"jax": load_run(MASTER / "raw", "jax", twin=False)}
    lines: list[str] = []
    assert regenerate(runs, ["linear"], BUILTIN, goldens, log=lines.append, snapshots_only=True) == 1
    assert any("not a valid reference.json" in ln and "without --snapshots-only" in ln for ln in lines)

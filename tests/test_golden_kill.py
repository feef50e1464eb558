"""`golden` killed (SIGKILL) at several points of writing a model's set: the set is the old one
or the new one, never a mix; `parity` names what was left in one line with the command that
finishes it; the next `golden` repairs the set and removes what the killed one left. Into a
copy of golden/linear whose reference files are corrupt (what `golden` must repair), never
into golden/ itself."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env

from keras_parity import golden
from keras_parity.golden import commit
from keras_parity.run import envinfo, machine

ARGS = ["--model", "linear", "--backend", "jax"]


def _files(folder: Path) -> dict[str, bytes]:
    """The set's files (not the obtained arrays a `parity` leaves beside them)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".obtained.npz"))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def _keras_parity(*args: str, out: Path, stop_at: int | None = None) -> subprocess.CompletedProcess:
    env = cli_env()
    env.pop(commit.STOP_AT, None)
    if stop_at is not None:
        env[commit.STOP_AT] = str(stop_at)
    cmd = [sys.executable, "-m", "keras_parity", *args, *ARGS, "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def _seed(into: Path) -> Path:
    """golden/linear copied, its three reference files corrupt or of the wrong structure, and
    without this machine's snapshot where one is checked in: `golden` then stages five files on
    every machine (a snapshot it would write unchanged is not staged, and the steps move)."""
    shutil.copytree(golden.GOLDEN / "linear", into / "linear", ignore=shutil.ignore_patterns("*.obtained.npz"))
    mine = into / "linear" / "snapshots" / machine.platform_key("cpu", None, envinfo.isa_cap())
    for name in ("jax.npz", "jax.json"):  # what ARGS' run writes
        (mine / name).unlink(missing_ok=True)
    (into / "linear" / "reference.npz").write_bytes(b"PK\x03\x04 cut short")
    (into / "linear" / "reference.json").write_text("[]")
    (into / "linear" / "graph.json").write_text('{"builders": 5}')
    return into


@pytest.mark.slow
def test_golden_killed_while_writing_leaves_a_whole_set_and_the_next_golden_repairs_it(tmp_path):
    checked_in = _files(golden.GOLDEN / "linear")
    old = _files(_seed(tmp_path / "old") / "linear")
    whole = _keras_parity("golden", "--golden-dir", str(_seed(tmp_path / "new")), out=tmp_path / "out")
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    new = _files(tmp_path / "new" / "linear")
    assert all(new[rel] == data for rel, data in checked_in.items() if rel.startswith("snapshots/"))  # other CPUs'
    # Five files staged (three repaired, this platform's snapshot and its JSON), the swap, the cleanup.
    left = {}
    for step in (1, 5, 6):
        gd = _seed(tmp_path / f"kill{step}")
        killed = _keras_parity("golden", "--golden-dir", str(gd), out=tmp_path / "out", stop_at=step)
        assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
        got = _files(gd / "linear")
        assert got == (old if step < 6 else new), f"killed at step {step}: a mix of the old set and the new"
        (left[step],) = [p for p in gd.iterdir() if p.name != "linear"]  # the staging folder, or the old set
        assert left[step].name.startswith(".linear.staging-")
    # parity on the old, corrupt set: one ERROR line naming the file and the exact command
    corrupt = _keras_parity("parity", "--golden-dir", str(tmp_path / "kill1"), out=tmp_path / "p1")
    assert corrupt.returncode == 3 and "Traceback" not in corrupt.stdout + corrupt.stderr
    fix = f"make the set anew with `nox -s golden -- --model linear --golden-dir {tmp_path / 'kill1'}`"
    assert any("golden file" in ln and "is corrupt" in ln and ln.endswith(fix) for ln in corrupt.stdout.splitlines())
    # parity on the new set with the killed run's folder beside it: judged, and the folder named once
    beside = _keras_parity("parity", "--golden-dir", str(tmp_path / "kill6"), out=tmp_path / "p6")
    assert beside.returncode == 0, beside.stdout[-3000:]
    (note,) = [ln for ln in beside.stdout.splitlines() if "a stopped `golden` left" in ln]
    assert str(left[6]) in note and "--golden-dir" in note
    # the next golden repairs the corrupt set and removes what the killed run left
    repair = _keras_parity("golden", "--golden-dir", str(tmp_path / "kill1"), out=tmp_path / "out")
    assert repair.returncode == 0, repair.stdout[-3000:] + repair.stderr[-3000:]
    assert _files(tmp_path / "kill1" / "linear") == new
    assert [p.name for p in (tmp_path / "kill1").iterdir()] == ["linear"]
    assert "left by a stopped `golden`" in repair.stdout
    assert _files(golden.GOLDEN / "linear") == checked_in

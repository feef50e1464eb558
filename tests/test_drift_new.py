"""`drift --new` without the network: a fake index (a function returning release lists) and a
fake uv; the selection of newer releases, the not-installable record, the pins.toml edit."""

import csv
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from keras_parity.drift import matrix, releases, report
from keras_parity.drift.matrix import Cell, Matrix

ROOT = Path(__file__).resolve().parent.parent

SMALL = Matrix(
    keras=("3.14.1", "3.15.1"),
    releases={"jax": ("0.9.2", "0.10.2"), "torch": ("2.13.0+cpu", "2.14.1"), "tensorflow": ("2.20.0", "2.21.0")},
    packages={"jax": "jax[cpu]", "torch": "torch", "tensorflow": "tensorflow-cpu"},
    resolved_at="2026-11-22T00:00:00Z",
    window=2,
)


def _files(when="2026-10-01T00:00:00Z", yanked=False):
    return [{"filename": "x.whl", "upload_time_iso_8601": when, "yanked": yanked}]


INDEX = {
    "keras": {"3.15.1": _files(), "3.16.0rc1": _files(), "3.14.2": _files()},
    "jax": {
        "0.10.2": _files(),
        "0.11.0": _files(),
        "0.11.2": _files(),
        "0.11.1": _files(),
        "0.12.0": _files(),
        "0.12.0.1": _files(),
        "0.13.0.dev20261101": _files(),
    },
    "torch": {"2.14.1": _files(), "2.15.0": _files(yanked=True), "2.15.1": _files("2026-11-30T10:00:00Z")},
    "tensorflow-cpu": {"2.21.0": _files(), "2.22.0rc0": _files(), "2.22.0": []},
}


def fake_index(name):
    return INDEX[name]


def test_newer_releases_skip_pre_releases_yanked_files_and_older_patches():
    found = {lib: [v for v, _ in rows] for lib, rows in releases.newer(SMALL, fake_index).items()}
    # keras 3.14.2 is older than the table's newest; 3.16.0rc1 a pre-release
    assert found["keras"] == []
    # the newest patch of each minor; a development release is skipped
    assert found["jax"] == ["0.11.2", "0.12.0.1"]
    # 2.15.0 has only a yanked file
    assert found["torch"] == ["2.15.1"]
    # a pre-release, and a release with no files at all
    assert found["tensorflow"] == []


def test_a_release_uploaded_after_the_table_resolves_as_of_now():
    import datetime

    now = datetime.datetime(2026, 12, 2, 8, 0, tzinfo=datetime.UTC)
    assert releases.resolve_date(SMALL, "2026-10-01T00:00:00Z", now) is None
    assert releases.resolve_date(SMALL, "2026-11-30T10:00:00Z", now) == "2026-12-02T08:00:00Z"
    later = Matrix(**{**SMALL.__dict__, "added": {"torch==2.15.1": "2026-12-02T08:00:00Z"}})
    assert later.resolved_for(Cell("torch", "3.15.1", "2.15.1")) == "2026-12-02T08:00:00Z"
    assert later.resolved_for(Cell("torch", "3.15.1", "2.14.1")) == SMALL.resolved_at


PINS_TEXT = """# the header comment
[pins]
keras = ["keras==3.15.1"]

# The drift matrix: kept as the user wrote it
[drift]
resolved_at = "2026-11-22T00:00:00Z"
window = 2  # the default window
keras = ["3.14.1", "3.15.1"]

[drift.backends.jax]
package = "jax[cpu]"
releases = ["0.9.2", "0.10.2"]  # oldest first

[drift.backends.torch]
package = "torch"
# a comment above the list
releases = ["2.13.0+cpu", "2.14.1"]
"""


def _uv_saying(failures: dict[str, str], on_newer: dict[str, str] | None = None, seen: list | None = None):
    """A fake subprocess.run for uv: `pip install` of a requirement named in `failures` fails
    with that stderr, and `pip compile` for another Python (an image's: its requirements in
    in.txt) of one named in `on_newer`; everything else succeeds. `seen` collects the compiles."""

    def run(cmd, **kw):
        if "install" in cmd:
            for req, stderr in failures.items():
                if req in cmd:
                    return subprocess.CompletedProcess(cmd, 1, "", stderr)
        if "compile" in cmd:
            reqs = (Path(kw["cwd"]) / "in.txt").read_text()
            python = cmd[cmd.index("--python-version") + 1]
            (seen if seen is not None else []).append((python, reqs.split()))
            for req, stderr in (on_newer or {}).items():
                if req in reqs:
                    return subprocess.CompletedProcess(cmd, 1, "", stderr)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return run


def test_discover_records_the_uninstallable_and_adds_the_rest_keeping_comments(tmp_path):
    pins, rec = tmp_path / "pins.toml", tmp_path / "releases.json"
    pins.write_text(PINS_TEXT)
    m = matrix.load(pins)
    fail = (
        "error: No solution found when resolving dependencies\n  cause: Because the current Python version "
        "(3.11.7) does not satisfy Python>=3.12 and you require jax[cpu]==0.11.2, we can conclude that your "
        "requirements are unsatisfiable.\n"
    )
    # jax 0.11.2 installs on Python 3.13 (its cells run in that image); 0.12.0.1 not even there
    worse = "  × No solution found\n  ╰─▶ Because jaxlib==0.12.0.1 has no wheels with a matching platform tag\n"
    seen = []
    run = _uv_saying(
        {"jax[cpu]==0.11.2": fail, "jax[cpu]==0.12.0.1": fail.replace("0.11.2", "0.12.0.1")},
        on_newer={"jax[cpu]==0.12.0.1": worse},
        seen=seen,
    )
    added = releases.discover(m, fake_index, path=pins, rec=rec, run=run, log=lambda *_: None)
    assert added == {"jax": ["0.11.2"], "torch": ["2.15.1"]}
    assert ("3.13", ["keras==3.15.1", "jax[cpu]==0.11.2"]) in seen

    text = pins.read_text()
    for comment in ("# the header comment", "# The drift matrix: kept", "# the default window", "# oldest first"):
        assert comment in text
    assert 'keras = ["3.14.1", "3.15.1"]\n' in text  # an untouched list stays as it was
    assert 'releases = ["0.9.2", "0.10.2", "0.11.2"]  # oldest first' in text  # an extended one keeps its comment
    assert '# a comment above the list\nreleases = ["2.13.0+cpu", "2.14.1", "2.15.1"]' in text
    new = matrix.load(pins)
    assert new.releases["torch"] == ("2.13.0+cpu", "2.14.1", "2.15.1")
    assert new.releases["jax"] == ("0.9.2", "0.10.2", "0.11.2")
    # uploaded after resolved_at: its cells resolve as of the run, the others keep their date (and environments)
    assert set(new.added) == {"torch==2.15.1"} and new.added["torch==2.15.1"] > new.resolved_at
    assert tomllib.loads(text)["drift"]["resolved_at"] == "2026-11-22T00:00:00Z"

    entries = {(e["library"], e["version"]): e for e in json.loads(rec.read_text())["releases"]}
    image = entries[("jax", "0.11.2")]
    assert (image["verdict"], image["python"]) == ("installable", "cp313")
    assert image["reason"].startswith("in an image of Python 3.13: ")
    assert "does not satisfy Python>=3.12" in image["reason"]
    neither = entries[("jax", "0.12.0.1")]
    assert neither["verdict"] == "uninstallable" and "\n" not in neither["reason"]
    assert "does not satisfy Python>=3.12" in neither["reason"] and "not on Python 3.13 either" in neither["reason"]
    assert "has no wheels with a matching platform tag" in neither["reason"]
    assert entries[("torch", "2.15.1")]["verdict"] == "installable"
    assert entries[("torch", "2.15.1")]["python"] == "cp311"

    # the report lists every release found, with the reason
    (tmp_path / "history.csv").write_text("")
    out = report.write(tmp_path / "history.csv", tmp_path / "report.md", tmp_path)
    shown = out.read_text()
    assert "| jax 0.12.0.1 |" in shown and "uninstallable" in shown and "| torch 2.15.1 |" in shown

    # a second run finds the same releases: nothing added twice, the record not duplicated
    again = releases.discover(new, fake_index, path=pins, rec=rec, run=run, log=lambda *_: None)
    assert again == {}
    assert len(json.loads(rec.read_text())["releases"]) == 3


def test_a_conflict_with_the_cells_other_pin_is_one_line():
    fail = (
        "  × No solution found when resolving dependencies:\n  ╰─▶ Because keras==3.15.1 depends on "
        "numpy<2.5 and torch==2.15.1 depends on\n      numpy>=2.5, we can conclude that your requirements are "
        "unsatisfiable.\n"
    )
    checked = releases.check(SMALL, "torch", "2.15.1", SMALL.resolved_at, run=_uv_saying({"torch==2.15.1": fail}))
    kind, reason = checked.kind, checked.reason
    assert kind == "conflict" and "numpy>=2.5" in reason and "\n" not in reason


def test_the_new_cells_are_the_window_with_the_release_and_its_predecessors():
    m = Matrix(**{**SMALL.__dict__, "releases": {**SMALL.releases, "torch": ("2.13.0+cpu", "2.14.1", "2.15.1")}})
    cells = releases.new_cells(m, {"torch": ["2.15.1"]})
    assert cells == [
        Cell("torch", "3.14.1", "2.14.1"),
        Cell("torch", "3.14.1", "2.15.1"),
        Cell("torch", "3.15.1", "2.14.1"),
        Cell("torch", "3.15.1", "2.15.1"),
    ]
    k = Matrix(**{**SMALL.__dict__, "keras": ("3.14.1", "3.15.1", "3.16.0")})
    assert Cell("jax", "3.16.0", "0.10.2") in releases.new_cells(k, {"keras": ["3.16.0"]})
    assert Cell("jax", "3.15.1", "0.9.2") in releases.new_cells(k, {"keras": ["3.16.0"]})


def test_a_list_written_over_several_lines_is_refused_without_touching_the_file(tmp_path):
    pins = tmp_path / "pins.toml"
    pins.write_text(PINS_TEXT.replace('releases = ["2.13.0+cpu", "2.14.1"]', 'releases = [\n  "2.13.0+cpu",\n]'))
    before = pins.read_bytes()
    with pytest.raises(matrix.MatrixError, match="one-line list"):
        releases.add_to_pins({"torch": ["2.15.1"]}, {}, pins)
    assert pins.read_bytes() == before


def test_the_checked_in_pins_read_the_same_after_an_edit_with_nothing_to_add(tmp_path):
    copy = tmp_path / "pins.toml"
    copy.write_text((ROOT / "requirements" / "pins.toml").read_text())
    releases.add_to_pins({}, {}, copy)
    assert copy.read_text() == (ROOT / "requirements" / "pins.toml").read_text()


TINY = """import keras


def build():
    x = keras.Input((4,), name="x")
    return keras.Model(x, keras.layers.Dense(3, activation="tanh", name="d")(x))
"""

# One drift cell in the pinned jax environment, whose lock pins exactly keras 3.15.1 and jax
# 0.10.2: the cell runs without installing anything.
IN_PINNED_ENV = """
import sys
from pathlib import Path
from keras_parity.cli import main
from keras_parity.drift import cellenv
from keras_parity.run import envs

cellenv.ensure = lambda matrix, cell, log=print: envs.ensure("jax")
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_users_builder_in_a_drift_cell_keeps_its_history_beside_its_goldens(tmp_path):
    import os
    import sys

    from helpers import cli

    from keras_parity.pins import pinned_version

    assert (pinned_version("keras"), pinned_version("jax-cpu")) == ("3.15.1", "0.10.2"), "update the cell below"
    (tmp_path / "tinydrift.py").write_text(TINY)
    goldens = tmp_path / "mygoldens"
    mine = ["--model", "tinydrift:build", "--golden-dir", str(goldens)]
    made = cli("golden", *mine, "--backend", "jax", "--out", str(tmp_path / "g"), cwd=tmp_path)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    builtin = (ROOT / "golden" / "drift" / "history.csv").read_bytes()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", IN_PINNED_ENV, "drift", "keras=3.15.1", "jax=0.10.2", *mine]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "s")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    rows = list(csv.DictReader((goldens / "drift" / "history.csv").open()))
    assert rows and {r["model"] for r in rows} == {"tinydrift.build"}
    assert {(r["keras"], r["backend"], r["library_version"], r["verdict"]) for r in rows} == {
        ("3.15.1", "jax", "0.10.2", "pass")
    }
    assert (goldens / "drift" / "report.md").exists() and list((goldens / "drift" / "snapshots").rglob("*.npz"))
    assert (ROOT / "golden" / "drift" / "history.csv").read_bytes() == builtin  # the suite's history untouched

    # the same cell again: in its history already, nothing appended
    again = subprocess.run([*cmd, "--out", str(tmp_path / "s")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "in the history already" in again.stdout
    assert len(list(csv.DictReader((goldens / "drift" / "history.csv").open()))) == len(rows)


def test_an_unknown_model_in_drift_is_one_line():
    from helpers import cli

    proc = cli("drift", "--model", "nosuch", "keras=3.15.1", "jax=0.10.2")
    assert proc.returncode != 0 and "unknown model 'nosuch'" in proc.stderr and len(proc.stderr.splitlines()) == 1

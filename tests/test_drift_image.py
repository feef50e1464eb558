"""Drift cells whose releases need a newer Python than the host's: uv's reason picks the image's
Python, the lock and the wheels are made for it, the cell runs in its image, and without an
engine or a base the cell says how to get them. (A real cell in a Python 3.13 image:
tests/test_drift_image_e2e.py.)"""

import subprocess
from pathlib import Path

import pytest

from keras_parity.drift import cellenv, cellimage, driver
from keras_parity.drift.matrix import Cell, Matrix
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run import images
from keras_parity.run.envs import EnvError

BUILTIN = builtin_registry()
SMALL = Matrix(
    keras=("3.14.1", "3.15.1"),
    releases={"jax": ("0.10.2", "0.12.0.1")},
    packages={"jax": "jax[cpu]"},
    resolved_at="2026-11-22T00:00:00Z",
    window=2,
)
NEEDS_312 = (
    "Because the current Python version (3.11.7) does not satisfy Python>=3.12 and you require "
    "jax[cpu]==0.12.0.1, we can conclude that your requirements are unsatisfiable."
)


@pytest.mark.parametrize(
    "reason, python",
    [
        (NEEDS_312, "3.13"),
        (NEEDS_312.replace(">=3.12", ">=3.13"), "3.13"),
        (NEEDS_312.replace(">=3.12", ">=3.14"), None),  # no base image has it
        ("Because jaxlib==0.12.0.1 has no wheels with a matching platform tag", None),
    ],
)
def test_the_python_a_cell_needs_comes_from_uvs_reason(reason, python):
    assert cellimage.python_needed(reason) == python


def test_the_lock_is_made_for_the_images_python_and_platform_as_of_the_cells_date(tmp_path, monkeypatch):
    calls = []

    def fake_uv(cmd, cwd, **kw):
        calls.append((cmd, (Path(cwd) / "in.txt").read_text().split()))
        (Path(cwd) / "lock.txt").write_text("jax==0.12.0.1 \\\n    --hash=sha256:00\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(cellimage, "LOCKS", tmp_path)
    monkeypatch.setattr(subprocess, "run", fake_uv)
    lock = cellimage.lock(SMALL, Cell("jax", "3.15.1", "0.12.0.1"), "3.13")
    ((cmd, reqs),) = calls
    assert reqs == ["keras==3.15.1", "jax[cpu]==0.12.0.1"]
    for flag, value in (("--python-version", "3.13"), ("--python-platform", "x86_64-manylinux_2_28")):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("--exclude-newer") + 1] == SMALL.resolved_at and "--generate-hashes" in cmd
    assert lock.parent == tmp_path and lock.name.startswith("keras-3.15.1_jax-0.12.0.1-py3.13-")
    assert lock.read_text().startswith("jax==0.12.0.1")


def test_the_wheels_of_a_candidate_lock_for_another_python_are_that_pythons(tmp_path):
    lock = tmp_path / "jax-py313.txt"
    lock.write_text("jax==0.12.0.1 \\\n    --hash=sha256:00\n")
    with images.candidate_locks({"jax": lock}, python="3.13"):
        cmd = images.download_command("jax", "cpu", tmp_path / "wheels")
    assert cmd[cmd.index("--python-version") + 1] == "3.13" and cmd[cmd.index("--abi") + 1] == "cp313"
    assert cmd[cmd.index("-r") + 1] == str(lock)
    # the pinned locks: the host's Python, as before
    assert "--python-version" not in images.download_command("jax", "cpu", tmp_path / "wheels")


def _ensure_saying(kind: str, reason: str):
    def ensure(matrix, cell, log=print):
        raise cellenv.CellFailure(kind, reason)

    return ensure


def test_a_cell_that_needs_a_newer_python_runs_in_its_image(tmp_path, monkeypatch):
    asked = []

    def in_image(matrix, cell, python, start, log):
        asked.append((cell, python))
        return "the run in the image"

    monkeypatch.setattr(cellenv, "ensure", _ensure_saying("uninstallable", NEEDS_312))
    monkeypatch.setattr(cellimage, "run", in_image)
    cell = Cell("jax", "3.15.1", "0.12.0.1")
    outcome = driver._execute(SMALL, cell, ["linear"], BUILTIN, tmp_path, log=lambda *_: None)
    assert asked == [(cell, "3.13")] and outcome.run == "the run in the image" and outcome.failure is None


@pytest.mark.parametrize(
    "kind, reason",
    [("conflict", "Because keras==3.15.1 depends on numpy<2.5"), ("uninstallable", "has no wheels with a matching")],
)
def test_a_cell_that_fails_for_another_reason_is_recorded_as_before(tmp_path, monkeypatch, kind, reason):
    monkeypatch.setattr(cellenv, "ensure", _ensure_saying(kind, reason))
    monkeypatch.setattr(cellimage, "run", lambda *a, **k: pytest.fail("no image for a cell that cannot install"))
    outcome = driver._execute(SMALL, Cell("jax", "3.15.1", "0.12.0.1"), ["linear"], BUILTIN, tmp_path, log=print)
    assert (outcome.failure.kind, outcome.failure.reason) == (kind, reason) and outcome.run is None


def test_without_an_engine_or_a_base_the_cell_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(cellimage, "lock", lambda m, c, p: tmp_path / "lock.txt")
    cell = Cell("jax", "3.15.1", "0.12.0.1")

    def no_engine():
        raise EnvError("no Docker daemon answers (DockerException); start one and set DOCKER_HOST")

    monkeypatch.setattr(images, "engine", no_engine)
    with pytest.raises(cellenv.CellFailure) as err:
        cellimage.run(SMALL, cell, "3.13", lambda **kw: pytest.fail("started"), log=print)
    assert err.value.kind == "uninstallable"
    assert err.value.reason.startswith("needs Python 3.13, in an image: no Docker daemon answers")

    class Engine:  # an engine without the trixie base
        class images:
            @staticmethod
            def list(name):
                return []

    monkeypatch.setattr(images, "engine", lambda: Engine)
    with pytest.raises(cellenv.CellFailure) as err:
        cellimage.run(SMALL, cell, "3.13", lambda **kw: pytest.fail("started"), log=print)
    assert "no base image keras-parity/base:trixie" in err.value.reason
    assert "base_image_offline keras-parity/base:trixie" in err.value.reason

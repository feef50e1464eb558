"""A drift cell whose releases need a Python this host lacks, run in an image of that Python.

uv says so when a cell cannot be installed here ("the current Python version (3.11.7) does not
satisfy Python>=3.12"). Such a cell is locked for the oldest Python of BASES that satisfies
it, its wheels are downloaded on the host for that Python, an image is built on that Python's
offline Debian base (docker/engine.sh: `base_image_offline keras-parity/base:trixie`) and the
cell's runner runs in it, as `parity --docker` runs the pinned images. Its rows and snapshot go
to the history like any other cell's; its `versions` column names the Python.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import threading
from pathlib import Path

from keras_parity.drift.cellenv import CellFailure
from keras_parity.drift.matrix import Cell, Matrix
from keras_parity.errors import InfraError
from keras_parity.paths import ROOT
from keras_parity.run import images
from keras_parity.run.envs import index_args, last_line
from keras_parity.run.envs import uv as envs_uv

# Python -> the offline base image that has it (Debian's python3 of that release).
BASES = {"3.11": "keras-parity/base:bookworm", "3.13": "keras-parity/base:trixie"}
LOCKS = ROOT / ".cache" / "drift-locks"
_NEEDS = re.compile(r"does not satisfy Python\s*>=\s*(\d+)\.(\d+)")
# One image cell at a time: a candidate lock stands in for the backend's image process-wide.
_ONE_AT_A_TIME = threading.Lock()


def _v(python: str) -> tuple[int, ...]:
    return tuple(int(p) for p in python.split("."))


def python_needed(reason: str) -> str | None:
    """The oldest Python of BASES a cell's releases accept, from uv's reason; None when the
    reason is not about the Python version (or no base has a Python new enough)."""
    m = _NEEDS.search(reason)
    if not m:
        return None
    fits = [p for p in sorted(BASES, key=_v) if _v(p) >= (int(m[1]), int(m[2]))]
    return fits[0] if fits else None


def resolve(reqs: list[str], python: str, exclude_newer: str, run=None) -> str:
    """`reqs` resolved for `python` on the images' platform as of `exclude_newer`: a hashed
    lock's text; a CellFailure when even that Python cannot install them."""
    from keras_parity.lockfiles import platforms

    with tempfile.TemporaryDirectory(prefix="drift-lock-") as scratch:
        (Path(scratch) / "in.txt").write_text("\n".join(reqs) + "\n")
        cmd = [
            *envs_uv(), "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
            "--python-version", python, "--python-platform", platforms()[images.IMAGE_PLATFORM],
            "--exclude-newer", exclude_newer, "--no-emit-find-links", "--no-emit-index-url",
            *index_args("\n".join(reqs)), "in.txt", "-o", "lock.txt",
        ]  # fmt: skip
        proc = (run or subprocess.run)(cmd, cwd=scratch, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CellFailure("uninstallable", f"not on Python {python} either: {last_line(proc.stderr)}")
        return (Path(scratch) / "lock.txt").read_text() if (Path(scratch) / "lock.txt").exists() else ""


def lock(matrix: Matrix, cell: Cell, python: str) -> Path:
    """The cell's lock for `python`, as of the cell's date: what its image installs."""
    text = resolve(matrix.requirements(cell), python, matrix.resolved_for(cell))
    out = LOCKS / f"{cell.slug}-py{python}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def run(matrix: Matrix, cell: Cell, python: str, start, log=print):
    """The cell run in an image of `python`: `start(docker=True)` launches its runner once the
    image is built (the caller's plan and folder). A missing engine or base is a CellFailure
    of kind 'uninstallable' whose reason says how to get them."""
    base = BASES[python]
    locked = lock(matrix, cell, python)
    with _ONE_AT_A_TIME, images.candidate_locks({cell.backend: locked}, python=python):
        try:
            client = images.engine()
            if not client.images.list(name=base):
                raise InfraError(
                    f"no base image {base}; make it with `source docker/engine.sh; engine_up; "
                    f"base_image_offline {base}`"
                )
            try:
                images.require(cell.backend)
            except InfraError:
                log(f"{cell.label}: building its image on Python {python} ({base})")
                images.build(cell.backend, base_image=base, log=log)
        except InfraError as exc:
            raise CellFailure("uninstallable", f"needs Python {python}, in an image: {exc}") from None
        return start(docker=True)

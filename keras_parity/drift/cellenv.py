"""One cached environment per drift cell, keyed by the content of its pins.

The key hashes the Python version, the cell's requirements and the resolution date, so an
unchanged matrix installs nothing; uv hard-links files from its cache, so environments share
the disk their common wheels take. A least-recently-used cap keeps the folder bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from keras_parity.drift.matrix import Cell, Matrix
from keras_parity.errors import InfraError
from keras_parity.report.progress import watch
from keras_parity.run.envs import env_root, index_args, installed, last_line
from keras_parity.run.envs import uv as envs_uv

MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
STAMP = ".drift-env.json"


class CellFailure(InfraError):
    """A cell that cannot run: `kind` is no-such-release, uninstallable, conflict, install-failed
    or import-error."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind, self.reason = kind, reason


def root() -> Path:
    return env_root() / "drift"


def key(matrix: Matrix, cell: Cell) -> str:
    text = json.dumps([sys.version_info[:2], matrix.requirements(cell), matrix.resolved_for(cell)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(matrix: Matrix, cell: Cell, log=print) -> Path:
    """The cell's python, installing only when no environment holds these pins yet."""
    env = root() / key(matrix, cell)
    python = env / "bin" / "python"
    stamp = env / STAMP
    if stamp.exists() and python.exists():
        os.utime(stamp)  # most recently used: last to be evicted
        return python
    shutil.rmtree(env, ignore_errors=True)  # a half-made environment from an interrupted run
    uv = envs_uv()
    _run([*uv, "venv", "--quiet", "--python", sys.executable, str(env)], cell)
    install = [
        *uv,
        "pip",
        "install",
        "--quiet",
        "--compile-bytecode",
        "--python",
        str(python),
        "--exclude-newer",
        matrix.resolved_for(cell),
        *index_args("\n".join(matrix.requirements(cell))),
        *matrix.requirements(cell),
    ]
    what = f"{cell.label}: installing {' '.join(matrix.requirements(cell))}"
    _run(install, cell, lambda cmd, **_: watch(cmd, what, lambda: installed(env), unit="packages", log=log))
    probe = f"import keras, {MODULE[cell.backend]}; print(keras.__version__)"
    proc = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": cell.backend},
        timeout=300,
    )
    if proc.returncode != 0:
        shutil.rmtree(env, ignore_errors=True)
        raise CellFailure("import-error", last_line(proc.stderr))
    stamp.write_text(json.dumps({"cell": cell.label, "requirements": matrix.requirements(cell)}) + "\n")
    return python


def _run(cmd: list[str], cell: Cell, run=subprocess.run) -> None:
    try:
        run_install(cmd, run=run)
    except CellFailure:
        shutil.rmtree(root() / "tmp", ignore_errors=True)
        raise


def run_install(cmd: list[str], run=subprocess.run) -> None:
    """Run a uv command; a failure is a CellFailure of the kind uv's message tells."""
    proc = run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    text = proc.stderr
    # uv explains a failed resolution after "cause:" (or "╰─▶"), over several indented lines
    marker = next((m for m in ("cause:", "╰─▶") if m in text), None)
    why = " ".join(text.split(marker, 1)[1].split()) if marker else last_line(text)
    if "there is no version of" in text or "not found in the package registry" in text:
        kind = "no-such-release"
    elif any(m in text for m in ("only found wheels for", "has no wheels with a matching", "current Python version")):
        kind = "uninstallable"
    elif "unsatisfiable" in text or "incompatible" in text:
        kind = "conflict"
    else:
        kind = "install-failed"
    raise CellFailure(kind, why)


def usage() -> list[tuple[str, str, float]]:
    """(key, cell label, MB) per cached environment; hard-linked files count once overall."""
    seen, out = set(), []
    for env in sorted(root().glob("*/" + STAMP)):
        size = 0
        for dirpath, _, files in os.walk(env.parent):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_blocks * 512
        out.append((env.parent.name, json.loads(env.read_text())["cell"], size / 1e6))
    return out


def prune(keep: set[str], limit_gb: float | None = None, log=print) -> float:
    """Remove environments not in `keep`; with `limit_gb`, only least-recently-used ones until
    the folder fits. Returns the MB left."""
    envs = sorted(root().glob("*/" + STAMP), key=lambda p: p.stat().st_mtime)
    sizes = {k: mb for k, _, mb in usage()}
    total = sum(sizes.values())
    for stamp in envs:
        if stamp.parent.name in keep:
            continue
        if limit_gb is not None and total <= limit_gb * 1e3:
            break
        mb = sizes.get(stamp.parent.name, 0.0)
        log(f"removing cached environment {stamp.parent.name} ({json.loads(stamp.read_text())['cell']}, {mb:.0f} MB)")
        shutil.rmtree(stamp.parent)
        total -= mb
    return total

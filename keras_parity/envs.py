"""One pinned virtual environment per backend, built from its lock and reused while it holds.

The environment records the sha256 of the lock it was synced from; a changed lock means
a re-sync, an unchanged one installs nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from keras_parity.envinfo import HOME, LOCKS, ROOT

# Local wheel folders (e.g. a CPU build of torch) searched before the index; pip's
# configured find-links are honoured the same way.
FIND_LINKS_ENV = "KERAS_PARITY_FIND_LINKS"


class EnvError(Exception):
    pass


def lock_file(backend: str, device: str = "cpu") -> Path:
    """requirements/<backend>.txt (CPU builds) or requirements/<backend>-cuda.txt."""
    return LOCKS / (f"{backend}.txt" if device == "cpu" else f"{backend}-{device}.txt")


def env_root() -> Path:
    return Path(os.environ.get("KERAS_PARITY_ENVS", HOME / ".venvs"))


def env_python(backend: str, device: str = "cpu") -> Path:
    return env_root() / lock_file(backend, device).stem / "bin" / "python"


def find_links_args() -> list[str]:
    dirs = os.environ.get(FIND_LINKS_ENV) or os.environ.get("PIP_FIND_LINKS") or ""
    if not dirs and Path("/opt/wheels").is_dir():
        dirs = "/opt/wheels"
    return [a for d in dirs.split() for a in ("--find-links", d)]


def _uv() -> list[str]:
    exe = shutil.which("uv")
    if exe:
        return [exe]
    try:
        import uv  # noqa: F401  (pip install uv ships the binary as a module)
    except ImportError:
        raise EnvError("uv is not installed; install it with `pip install uv` (or `pip install 'nox[uv]'`)") from None
    return [sys.executable, "-m", "uv"]


def ensure(backend: str, log=print, device: str = "cpu") -> Path:
    """Return the backend environment's python, creating or re-syncing it only if needed."""
    lock = lock_file(backend, device)
    if not lock.exists():
        raise EnvError(f"no lock file {lock}; create it with `nox -s lock`")
    env = env_root() / lock.stem
    python = env_python(backend, device)
    if python.exists() and is_synced(env, lock):
        return python
    log(f"syncing environment {env} from {lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock}")
    uv = _uv()
    steps = [
        [*uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(env)],
        # Bytecode compiled now, not at every import: imports dominate a parity run.
        [*uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", str(python), *find_links_args(), str(lock)],
    ]
    for cmd in steps:
        run_or_fail(cmd, f"creating the {backend} environment")
    mark_synced(env, lock)
    return python


def _stamp(directory: Path) -> Path:
    return directory / ".lock-sha256"


def is_synced(directory: Path, lock: Path) -> bool:
    """True when `directory` (an environment, a wheelhouse) was last filled from this lock."""
    stamp = _stamp(directory)
    return stamp.exists() and stamp.read_text().strip() == hashlib.sha256(lock.read_bytes()).hexdigest()


def mark_synced(directory: Path, lock: Path) -> None:
    _stamp(directory).write_text(hashlib.sha256(lock.read_bytes()).hexdigest() + "\n")


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def run_or_fail(cmd: list[str], what: str) -> None:
    """Run a set-up command; on failure, one line: what failed and the command's last word."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvError(f"{what} failed: {last_line(proc.stderr)}")

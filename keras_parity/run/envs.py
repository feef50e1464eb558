"""One pinned virtual environment per backend, built from its lock and reused while it holds.

The environment records the sha256 of the lock it was synced from; a changed lock means
a re-sync, an unchanged one installs nothing.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from keras_parity import paths
from keras_parity.errors import InfraError
from keras_parity.paths import LOCKS, ROOT
from keras_parity.run.machine import LOCK_PLATFORMS, lock_platform

# Local wheel folders (e.g. a CPU build of torch) searched before the index; pip's
# configured find-links are honoured the same way.
FIND_LINKS_ENV = "KERAS_PARITY_FIND_LINKS"
# Where the CPU builds of torch (`torch==X+cpu`) are published, as in Keras's own
# requirements files; PyPI's Linux torch is a CUDA build of several GB.
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class EnvError(InfraError):
    pass


def host_platform() -> str:
    """This machine's lock platform, or one line saying there is none and what to do."""
    plat = lock_platform()
    if plat is None:
        import platform

        raise EnvError(
            f"no locks for {platform.system()} {platform.machine()}: requirements/ holds "
            f"{', '.join(LOCK_PLATFORMS.values())}; add yours under [platforms] in requirements/pins.toml "
            "and run `nox -s lock`, or run the backends in their Linux images with --docker"
        )
    return plat


def lock_file(backend: str, device: str = "cpu", platform: str | None = None) -> Path:
    """requirements/<platform>/<backend>.txt (CPU builds) or .../<backend>-cuda.txt, for this
    machine's platform unless another is named (the images take the engine's)."""
    name = f"{backend}.txt" if device == "cpu" else f"{backend}-{device}.txt"
    return LOCKS / (platform or host_platform()) / name


def env_root() -> Path:
    return paths.env_root()


def env_python(backend: str, device: str = "cpu") -> Path:
    return env_root() / lock_file(backend, device).stem / "bin" / "python"


def _pip_config_find_links() -> str:
    """find-links from pip's own configuration files (global, user, PIP_CONFIG_FILE)."""
    files = [
        "/etc/xdg/pip/pip.conf",
        "/etc/pip.conf",
        Path.home() / ".config" / "pip" / "pip.conf",
        Path.home() / ".pip" / "pip.conf",
        Path.home() / "Library" / "Application Support" / "pip" / "pip.conf",
        os.environ.get("PIP_CONFIG_FILE", ""),
    ]
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read([str(f) for f in files if f])
    except configparser.Error:
        return ""
    for section in ("install", "download", "global"):
        if config.has_option(section, "find-links"):
            return config.get(section, "find-links")
    return ""


def find_links() -> list[str]:
    """The local wheel folders: KERAS_PARITY_FIND_LINKS, else pip's (PIP_FIND_LINKS or its
    configuration files)."""
    dirs = os.environ.get(FIND_LINKS_ENV) or os.environ.get("PIP_FIND_LINKS") or _pip_config_find_links()
    return dirs.split()


def locked(lock_text: str) -> dict[str, str]:
    """{name as the lock writes it: version} of every pin of a lock."""
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock_text, flags=re.M))


def _cpu_builds(requirements: str) -> list[tuple[str, str]]:
    """(name, version) of every `name==version+cpu` pin: the PyTorch CPU index's builds."""
    return re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+\+cpu)\b", requirements, flags=re.M)


def _in_folders(name: str, version: str, folders: list[str]) -> bool:
    stem = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"
    for folder in folders:
        path = Path(folder.removeprefix("file://"))
        if path.is_dir() and any(p.name.lower().startswith(stem) for p in path.glob("*.whl")):
            return True
    return False


def index_args(requirements: str, tool: str = "uv") -> list[str]:
    """Where the wheels of `requirements` (a lock's or pins' text) come from, besides PyPI.

    The local wheel folders when configured; the PyTorch CPU index only for `+cpu` builds
    none of those folders holds, so a machine with its wheels on disk never waits on an
    index it may not reach. uv takes a version from whichever index has it (pip does so
    by default); the lock's hashes decide which file is acceptable."""
    folders = find_links()
    args = [a for d in folders for a in ("--find-links", d)]
    if any(not _in_folders(n, v, folders) for n, v in _cpu_builds(requirements)):
        args += ["--extra-index-url", PYTORCH_CPU_INDEX]
        args += ["--index-strategy", "unsafe-best-match"] if tool == "uv" else []
    return args


def uv() -> list[str]:
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
        raise EnvError(f"no lock {lock.relative_to(LOCKS.parent)} for this platform; create it with `nox -s lock`")
    return provision(env_root() / lock.stem, lock, f"the {backend} environment", log=log)


def provision(env: Path, lock: Path, what: str, log=print) -> Path:
    """The python of `env`, created and synced from `lock` unless it holds that lock already;
    one writer at a time. Failures say 'creating <what> failed: ...'."""
    python = env / "bin" / "python"
    if python.exists() and is_synced(env, lock):
        return python
    with exclusive(env):
        if python.exists() and is_synced(env, lock):  # another command synced it while this one waited
            return python
        venv = [*uv(), "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(env)]
        run_or_fail(venv, f"creating {what}")
        sync(lock, python, f"creating {what}", log=log)
        mark_synced(env, lock)
    return python


@contextlib.contextmanager
def exclusive(folder: Path):
    """One writer of an environment (or a wheelhouse) at a time, across processes: two commands
    started together (`nox -s parity` and `nox -s zoo` in two terminals) would otherwise install
    into the same folder at once. The lock file sits beside the folder and stays."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def sync(lock: Path, python: Path, what: str, log=print) -> None:
    """Install exactly the lock into the environment of `python`, its packages counted on a bar."""
    from keras_parity.report.progress import watch

    env = python.parent.parent
    shown = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    total = len(locked(lock.read_text()))
    proc = watch(
        sync_command(lock, python), f"syncing {env.name} from {shown}", lambda: installed(env),
        total=total, unit="packages", log=log,
    )  # fmt: skip
    if proc.returncode != 0:
        raise EnvError(f"{what} failed: {last_line(proc.stderr)}")


def installed(env: Path) -> int:
    """How many packages an environment holds (its .dist-info folders)."""
    return sum(1 for _ in env.glob("lib/python*/site-packages/*.dist-info"))


def sync_command(lock: Path, python: Path) -> list[str]:
    """The install of one environment from its lock: exactly its pinned, hashed wheels."""
    # Bytecode compiled now, not at every import: imports dominate a parity run.
    return [
        *uv(), "pip", "sync", "--quiet", "--compile-bytecode", "--require-hashes", "--python", str(python),
        *index_args(lock.read_text()), str(lock),
    ]  # fmt: skip


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

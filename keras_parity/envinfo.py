"""Where a run happened: library versions, device, CPU/GPU model, platform key, git commit."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A source checkout (nox sessions) keeps everything under ROOT. An installed package (pip
# install keras-parity) has its locks inside the package, and puts the backend environments
# and caches under KERAS_PARITY_HOME, results under the current folder.
CHECKOUT = (ROOT / "requirements" / "pins.toml").exists()
LOCKS = ROOT / "requirements" if CHECKOUT else Path(__file__).resolve().parent / "requirements"
HOME = ROOT if CHECKOUT else Path(os.environ.get("KERAS_PARITY_HOME", Path.home() / ".cache" / "keras-parity"))
RESULTS = ROOT / "results" if CHECKOUT else Path("results")


def source_path() -> Path:
    """A folder holding only the keras_parity and models packages, for the backend
    environments' PYTHONPATH (the installed package's site-packages holds much more)."""
    if CHECKOUT:
        return ROOT
    src = HOME / "src"
    src.mkdir(parents=True, exist_ok=True)
    for pkg in ("keras_parity", "models"):
        link = src / pkg
        if not (link.is_symlink() and link.resolve() == (ROOT / pkg).resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(ROOT / pkg)
    return src


# Packages whose versions a result depends on; absent ones are omitted.
_PACKAGES = ("keras", "numpy", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "ml-dtypes")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_family() -> str:
    """The widest SIMD family the CPU offers: the one float32 kernels get dispatched to."""
    machine = platform.machine()
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return machine
    for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sve", "sve"), ("asimd", "neon")):
        if flag in flags:
            return f"{machine}-{name}"
    return machine


def platform_key(device: str, gpu_model: str | None) -> str:
    """Snapshots are bit-comparable only within one platform key."""
    if device == "gpu" and gpu_model:
        return "gpu-" + re.sub(r"[^a-z0-9]+", "-", gpu_model.lower()).strip("-")
    return "cpu-" + isa_family()


def git_commit() -> str:
    if os.environ.get("KERAS_PARITY_GIT_COMMIT"):  # set for containers, which hold no .git
        return os.environ["KERAS_PARITY_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(device: str, gpu: str | None) -> dict:
    """What a runner records of where it ran, beside its results."""
    return {
        "versions": versions(),
        "device": device,
        "gpu_model": gpu,
        "cpu_model": cpu_model(),
        "platform": platform_key(device, gpu),
        "git_commit": git_commit(),
    }

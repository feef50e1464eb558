"""Where a run happened: library versions, device, the machine and its platform key, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from keras_parity.paths import CHECKOUT, HOME, PACKAGE, ROOT
from keras_parity.run import machine

# The ISA cap of a run (keras_parity/run/knobs.py), handed from the launcher to every runner.
ISA_CAP_ENV = "KERAS_PARITY_ISA_CAP"


def source_path() -> Path:
    """A folder holding only the keras_parity package (its built-in models included), for the
    backend environments' PYTHONPATH (the installed package's site-packages holds much more)."""
    if CHECKOUT:
        return ROOT
    src = HOME / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "models").unlink(missing_ok=True)  # left by a release that installed a top-level `models`
    link = src / "keras_parity"
    if not (link.is_symlink() and link.resolve() == PACKAGE):
        link.unlink(missing_ok=True)
        link.symlink_to(PACKAGE)
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


def exit_fast(code: int) -> None:
    """End a runner process once its results are on disk: flush, then skip the interpreter's
    teardown, which costs TensorFlow about a second."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def isa_cap() -> str | None:
    """The ISA cap this process runs under (`--isa-cap`, passed to runners in the environment)."""
    return os.environ.get(ISA_CAP_ENV) or None


def provenance(device: str, gpu: dict | None) -> dict:
    """What a runner records of where it ran, beside its results: the readable machine facts
    and the platform key made from them (keras_parity/run/machine.py)."""
    cpu = machine.cpu_identity()
    return {
        "versions": versions(),
        "device": device,
        "gpu_model": gpu.get("model") if gpu else None,
        "gpu": gpu,
        "cpu_model": cpu["model_name"],
        "cpu": cpu,
        "isa_cap": isa_cap(),
        "platform": machine.platform_key(device, gpu, isa_cap(), cpu),
        "git_commit": git_commit(),
    }

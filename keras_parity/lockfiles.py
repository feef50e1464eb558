"""Compile the pins (requirements/pins.toml) into hashed locks, one folder per platform:
requirements/<platform>/<lock>.txt, for linux x86_64, linux aarch64 and macOS arm64.

`nox -s lock` runs this (`python -m keras_parity.lockfiles [NAME ...] [--platform P ...]`).
Standard library only besides uv: it runs before any locked environment exists. A lock that
exists already seeds the resolution (uv prefers the versions in its output file), so a
re-lock changes only what the pins changed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from keras_parity.paths import LOCKS
from keras_parity.pins import PINS, PinsError, lock_inputs
from keras_parity.run.envs import index_args

PYTHON = "3.11"
# The oldest macOS the macOS locks' wheels must run on: torch's arm64 wheels need 14.
MACOS_TARGET = "14.0"


def platforms(path: Path = PINS) -> dict[str, str]:
    """Lock platform -> uv's --python-platform, from [platforms] of the pins."""
    return dict(tomllib.loads(path.read_text()).get("platforms", {}))


def lock_platforms(name: str, path: Path = PINS) -> list[str]:
    """The platforms lock `name` is made for: [lock-platforms] names some, the rest get all."""
    data = tomllib.loads(path.read_text())
    return list(data.get("lock-platforms", {}).get(name, data.get("platforms", {})))


def compile_lock(name: str, plat: str, requirements: list[str], uv: list[str]) -> Path:
    out = LOCKS / plat / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    seed = LOCKS / "linux-x86_64" / f"{name}.txt"
    if not out.exists() and seed.exists():
        shutil.copy2(seed, out)  # the same versions wherever the platform has them
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS_TARGET}
    # Compiled from a scratch folder so the lock's "via" lines name `<lock>.in`, not a path.
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / f"{name}.in").write_text("\n".join(requirements) + "\n")
        cmd = [
            *uv, "pip", "compile", "--quiet", "--generate-hashes",
            "--custom-compile-command", f"nox -s lock -- {name} --platform {plat}",
            "--python-version", PYTHON, "--python-platform", platforms()[plat],
            "--no-emit-find-links", "--no-emit-index-url",
            *index_args("\n".join(requirements), tool="uv"),
            f"{name}.in", "-o", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PinsError(f"lock {name} for {plat} failed: {_cause(proc.stderr)}")
    return out


def _cause(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    why = [ln for ln in lines if ln.startswith(("╰─▶", "cause:", "error:"))]
    return (why[-1] if why else lines[-1] if lines else "(no output)").lstrip("╰─▶ ")


def main(argv=None) -> int:
    inputs = lock_inputs()
    ap = argparse.ArgumentParser(prog="nox -s lock --", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"locks to compile (default: all): {', '.join(inputs)}")
    ap.add_argument("--platform", action="append", choices=sorted(platforms()), help="only this platform")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in inputs]
    if unknown:
        sys.exit(f"error: no lock {unknown[0]!r} in requirements/pins.toml; choose from {', '.join(inputs)}")
    uv = [shutil.which("uv") or sys.exit("error: uv is not installed; install it with `pip install uv`")]
    failed = 0
    for name in args.names or inputs:
        for plat in lock_platforms(name):
            if args.platform and plat not in args.platform:
                continue
            try:
                out = compile_lock(name, plat, inputs[name], uv)
                print(f"{out.relative_to(LOCKS.parent)}")
            except PinsError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`--bisect LIB LO HI`: the first release in a range where each model's numbers change.

Bisection over every release the index lists between LO and HI (inclusive), running a cell
only when its snapshot is not recorded yet, so it installs only the releases it needs. It
assumes a change, once made, stays (the usual case); the cells it runs join the history.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from keras_parity import golden
from keras_parity.drift.driver import DRIFT, run_cells, snapshot_path
from keras_parity.drift.matrix import Cell, Matrix, MatrixError, version_key
from keras_parity.judge.numerics import max_ulp
from keras_parity.registry.spec import Registry
from keras_parity.run import envinfo, machine


def releases_between(package: str, lo: str, hi: str) -> list[str]:
    """Releases of `package` with wheels for this Python, LO <= release <= HI, oldest first."""
    name = package.split("[")[0]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name, "--only-binary=:all:"],
        capture_output=True,
        text=True,
    )
    listed = next((ln for ln in proc.stdout.splitlines() if ln.startswith("Available versions:")), "")
    found = [v.strip() for v in listed.split(":", 1)[-1].split(",") if v.strip()]
    if not found:
        raise MatrixError(f"the index lists no releases of {name} for this Python; check the name and the network")
    for end in (lo, hi):
        if end not in found:
            raise MatrixError(
                f"{name} {end} is not a release with wheels for this Python; pick one of {', '.join(found[:8])}, ..."
            )
    inside = [v for v in found if version_key(lo) <= version_key(v) <= version_key(hi) and "rc" not in v]
    # a local build (2.13.0+cpu) and its plain twin are one release: keep the one asked for
    keep = {version_key(v): v for v in sorted(inside, key=lambda v: ("+" in v) == ("+" in lo))}
    return sorted(keep.values(), key=version_key)


def bisect(
    matrix: Matrix,
    library: str,
    lo: str,
    hi: str,
    models: list[str],
    scratch: Path,
    *,
    registry: Registry,
    held: Cell | None = None,
    root: Path = DRIFT,
    history_path=None,
    log=print,
) -> dict[str, tuple[str, str, int] | None]:
    """Model -> (first changed release, the one before it, max ULP between them) or None.

    `held` gives the release kept fixed on the other axis (default: the matrix's newest;
    bisecting keras, its backend too, jax by default)."""
    make, releases = _axis(matrix, library, lo, hi, held)
    log(f"bisecting {len(releases)} releases of {library}: {', '.join(releases)}")
    platform = machine.platform_key("cpu", None, envinfo.isa_cap())
    cache: dict[str, dict | None] = {}
    extra = {"history_path": history_path} if history_path else {}

    def outputs(v: str) -> dict | None:
        """The release's recorded outputs, its cell run (and judged, by drift's driver) first if need be."""
        if v not in cache:
            path = snapshot_path(make(v), platform, root)
            have = golden.read_npz(path) if path.exists() else {}
            if not all(golden.part(have, m) for m in models):
                run_cells(matrix, [make(v)], models, scratch, registry=registry, jobs=1, root=root, log=log, **extra)
            cache[v] = golden.read_npz(path) if path.exists() else None
        return cache[v]

    result = {}
    for model in models:
        if outputs(releases[0]) is None or outputs(releases[-1]) is None:
            raise MatrixError(f"the ends of the range must run: {library} {lo} or {hi} did not (see the history)")
        result[model] = _first_change(list(releases), outputs, model)
    ran = sum(v is not None for v in cache.values())
    log(f"looked at {len(cache)} of {len(releases)} releases ({ran} ran or were recorded)")
    return result


def _axis(matrix: Matrix, library: str, lo: str, hi: str, held: Cell | None):
    """(release -> the cell that runs it, the releases from lo to hi) for the library bisected."""
    if library == "keras":
        backend = held.backend if held else "jax"
        fixed = held.version if held else matrix.releases[backend][-1]
        return (lambda v: Cell(backend, v, fixed)), releases_between("keras", lo, hi)
    if library in matrix.releases:
        keras = held.keras if held else matrix.keras[-1]
        return (lambda v: Cell(library, keras, v)), releases_between(matrix.packages[library], lo, hi)
    raise MatrixError(f"cannot bisect {library!r}; use keras or one of {', '.join(matrix.releases)}")


def _same(a: dict, b: dict, model: str) -> bool:
    mine, theirs = golden.part(a, model), golden.part(b, model)
    return mine.keys() == theirs.keys() and all(mine[k].tobytes() == theirs[k].tobytes() for k in mine)


def _first_change(candidates: list[str], outputs, model: str) -> tuple[str, str, int] | None:
    """Binary search between the ends for the first release whose bits of `model` differ from
    the first one's; a release that does not install is dropped and the search goes on."""
    first = outputs(candidates[0])
    if _same(first, outputs(candidates[-1]), model):
        return None
    lo_i, hi_i = 0, len(candidates) - 1
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        got = outputs(candidates[mid])
        if got is None:
            del candidates[mid]
            hi_i -= 1
        elif _same(first, got, model):
            lo_i = mid
        else:
            hi_i = mid
    mine, theirs = golden.part(outputs(candidates[hi_i]), model), golden.part(outputs(candidates[lo_i]), model)
    return candidates[hi_i], candidates[lo_i], max_ulp(mine, theirs, [k for k in mine if k in theirs])

"""When each watch case appeared: every case run in the drift matrix's cells along both axes
(every keras release with each backend's newest release, every backend release with the
newest keras), each cell in its drift environment or, where its releases need a newer
Python, in that Python's image (keras_parity/drift/driver.run_cell). `nox -s watch --
--releases` prints it; with `--update` each case's states per release go to golden/watch.json.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from keras_parity.drift import cellenv, driver, matrix
from keras_parity.drift.matrix import Cell
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run.flags import RunFlags
from keras_parity.run.service import RunPlan

MARK = {True: "+", False: "-", None: "E"}  # present, absent, the reproducer raised


def sweep(backends: list[str], log=print, jobs: int = 2) -> dict[Cell, dict | str]:
    """{cell: its watch observations, or why the cell could not run}: the linear model (the
    cheapest) and the watch list in each cell's environment, two cells at a time."""
    m = matrix.load()
    cells = m.cells(backends, axes=("keras", "library"))
    registry = builtin_registry()
    plan = RunPlan(backends=[], models=["linear"], registry=registry, flags=RunFlags(training=False, watch=True))

    def one(cell: Cell, scratch: Path) -> dict | str:
        mine = RunPlan(backends=[cell.backend], models=plan.models, registry=registry, flags=plan.flags)
        try:
            run = driver.run_cell(m, cell, mine, scratch / cell.slug, log=log)
        except cellenv.CellFailure as exc:
            return f"{exc.kind}: {exc.reason}"
        return run.error or run.watch or "the run recorded no watch list"

    with tempfile.TemporaryDirectory(prefix="watch-releases-") as tmp, ThreadPoolExecutor(jobs) as pool:
        futures = {c: pool.submit(one, c, Path(tmp)) for c in cells}
        return {c: f.result() for c, f in futures.items()}


def by_axis(seen: dict[Cell, dict | str], case: str, backend: str) -> dict[str, dict[str, bool | None | str]]:
    """{'keras': {release: state}, backend: {release: state}} of one case, oldest release first;
    a state is True (present), False, None (the reproducer raised) or why the cell did not run."""
    m = matrix.load()
    out: dict[str, dict] = {"keras": {}, backend: {}}
    for cell, obs in sorted(seen.items(), key=lambda kv: m.order(kv[0])):
        if cell.backend != backend:
            continue
        state = obs if isinstance(obs, str) else (obs.get(case) or {}).get("present")
        if cell.version == m.releases[backend][-1]:
            out["keras"][cell.keras] = state
        if cell.keras == m.keras[-1]:
            out[backend][cell.version] = state
    return out


def since(states: dict[str, bool | None | str]) -> str:
    """The oldest release from which the case is present in every later release checked."""
    first = None
    for release, state in states.items():
        if state is True:
            first = first or release
        elif not isinstance(state, str):
            first = None  # absent (or raising) after being present: not yet for good
    return first or ""


def strip(states: dict[str, bool | None | str]) -> str:
    """'3.10.0- 3.11.3+ ...': a case's states along one axis, at a glance."""
    return " ".join(f"{r}{MARK.get(s, '?') if not isinstance(s, str) else 'x'}" for r, s in states.items())

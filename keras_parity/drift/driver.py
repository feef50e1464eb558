"""Run drift cells: environment, parity run, comparison with the reference and with the
neighbouring releases' snapshots, then rows appended to the history.

Cells run two at a time (one process each on the two cores) and their rows are written in
matrix order, so a cell's neighbours are always recorded before it.
"""

from __future__ import annotations

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from keras_parity import golden, paths
from keras_parity.drift import cellenv, cellimage, history
from keras_parity.drift.matrix import Cell, Matrix, version_key
from keras_parity.judge.evaluate import evaluate
from keras_parity.judge.numerics import max_ulp
from keras_parity.registry.spec import Registry
from keras_parity.report.progress import activity
from keras_parity.run import envinfo, machine, service
from keras_parity.run.record import BackendRun
from keras_parity.run.service import RunPlan

DRIFT = paths.DRIFT


@dataclass
class Outcome:
    cell: Cell
    run: BackendRun | None = None
    failure: cellenv.CellFailure | None = None
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)


def snapshot_path(cell: Cell, platform: str, root: Path = DRIFT) -> Path:
    return root / "snapshots" / platform / cell.backend / f"{cell.slug}.npz"


def _neighbour(cell: Cell, axis: str, platform: str, roots) -> tuple[Cell, Path] | None:
    """The nearest earlier release on `axis` whose snapshot is on disk under one of `roots` (same
    other coordinate), and that snapshot; the first root wins a tie."""
    best = None
    rank = (lambda c: version_key(c.keras)) if axis == "keras" else (lambda c: version_key(c.version))
    for root in roots:
        for path in sorted((root / "snapshots" / platform / cell.backend).glob("keras-*.npz")):
            keras, version = path.stem[len("keras-") :].split(f"_{cell.backend}-", 1)
            other = Cell(cell.backend, keras, version)
            held = version == cell.version if axis == "keras" else keras == cell.keras
            if held and rank(other) < rank(cell) and (best is None or rank(other) > rank(best[0])):
                best = (other, path)
    return best


def _vs(arrays: dict, prev: dict | None, prefix: str) -> tuple[str, str]:
    if prev is None:
        return "", ""
    keys = [k for k in arrays if k.startswith(prefix)]
    if not keys or any(k not in prev or prev[k].shape != arrays[k].shape for k in keys):
        return "", ""
    ulp = max_ulp(arrays, prev, keys)
    return str(ulp), "yes" if all(arrays[k].tobytes() == prev[k].tobytes() for k in keys) else "no"


def _same_weights(snapshot: Path, weights: dict[str, dict[str, str]]) -> set[str]:
    """The models whose every builder ran the same weights in the neighbour `snapshot` as in this
    cell (its JSON keeps them; one recorded before it did says nothing, so none)."""
    meta = snapshot.with_suffix(".json")
    theirs = golden.read_json(meta).get("weights", {}) if meta.exists() else {}
    return {m for m, w in weights.items() if theirs.get(m) == w}


def rows_for(outcome: Outcome, models: list[str], registry: Registry, root: Path = DRIFT, also=()) -> list[dict]:
    """The cell's history rows; its snapshot is written under `root`, its neighbours are looked
    for there and then in the drift folders `also`. `registry` holds the models' specs."""
    cell, run = outcome.cell, outcome.run
    base = {
        "recorded": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "platform": (run.platform if run else None) or machine.platform_key("cpu", None, envinfo.isa_cap()),
        "device": "cpu",
        "backend": cell.backend,
        "keras": cell.keras,
        "library_version": cell.version,
    }
    if outcome.failure or run is None or run.error:
        kind, reason = (
            (outcome.failure.kind, outcome.failure.reason)
            if outcome.failure
            else ("error", (run and run.error) or "the cell did not run")
        )
        return [base | {"model": "*", "case": "*", "path": "*", "verdict": kind, "reason": reason[:300]}]
    base["versions"] = ";".join(f"{k}={v}" for k, v in sorted(run.versions.items()))
    platform = base["platform"]
    found = {axis: _neighbour(cell, axis, platform, (root, *also)) for axis in ("keras", "library")}
    neighbours = {a: f[0] if f else None for a, f in found.items()}
    prev = {a: golden.read_npz(f[1]) if f else None for a, f in found.items()}
    weights = {m: {b: r.weights_sha256 for b, r in rec.builders.items()} for m, rec in run.models.items()}
    # bits are compared only where both ran the same weights (a neighbour recorded before the
    # weights' generator changed, or with another model file, says nothing about the release)
    alike = {a: _same_weights(f[1], weights) if f else set() for a, f in found.items()}
    snap = snapshot_path(cell, platform, root)
    earlier = golden.read_npz(snap) if snap.exists() else {}  # models of this cell recorded before
    golden.write_npz(snap, earlier | run.arrays)
    known = golden.read_json(snap.with_suffix(".json")).get("weights", {}) if snap.with_suffix(".json").exists() else {}
    golden.write_json(snap.with_suffix(".json"), run.header() | {"weights": known | weights})
    rows = []
    for result in evaluate({cell.backend: run}, models, registry):
        prefix = golden.key(result.model, result.case, result.path) + golden.SEP
        ulp_k, same_k = _vs(run.arrays, prev["keras"] if result.model in alike["keras"] else None, prefix)
        ulp_l, same_l = _vs(run.arrays, prev["library"] if result.model in alike["library"] else None, prefix)
        rel = max((m.rel_l2 for m in result.outputs.values()), default=float("nan"))
        # failures, and an optimizer or loss config that moved since the goldens (a changed default)
        problems = [f.text() for f in result.findings if not f.note or f.kind == "config"]
        rows.append(
            base
            | {
                "model": result.model,
                "case": result.case,
                "path": result.path,
                "rel_l2": f"{rel:.3e}" if result.outputs else "",
                "tol_rel_l2": f"{result.tol.rel_l2:.0e}" if result.tol else "",
                "prev_keras": neighbours["keras"].keras if neighbours["keras"] and ulp_k else "",
                "max_ulp_prev_keras": ulp_k,
                "same_bits_prev_keras": same_k,
                "prev_library": neighbours["library"].version if neighbours["library"] and ulp_l else "",
                "max_ulp_prev_library": ulp_l,
                "same_bits_prev_library": same_l,
                "verdict": result.status,
                "reason": "; ".join(problems)[:300],
            }
        )
    return rows


def run_cell(matrix: Matrix, cell: Cell, plan: RunPlan, into: Path, log=print) -> BackendRun:
    """The plan run in the cell's environment, or in an image of a newer Python where its
    releases need one; a cellenv.CellFailure when neither can hold them."""

    def start(**how):
        return service.run(plan, into=into, log=log, **how)[cell.backend]

    try:
        return start(python={cell.backend: cellenv.ensure(matrix, cell, log=log)})
    except cellenv.CellFailure as exc:
        newer = cellimage.python_needed(exc.reason) if exc.kind == "uninstallable" else None
        if newer is None:
            raise
        return cellimage.run(matrix, cell, newer, start, log)


def _execute(matrix: Matrix, cell: Cell, models: list[str], registry: Registry, scratch: Path, log) -> Outcome:
    t0 = time.perf_counter()
    outcome = Outcome(cell)
    plan = RunPlan(backends=[cell.backend], models=models, registry=registry)
    try:
        outcome.run = run_cell(matrix, cell, plan, scratch / cell.slug, log)
    except cellenv.CellFailure as exc:
        outcome.failure = exc
    outcome.seconds = time.perf_counter() - t0
    return outcome


def run_cells(
    matrix: Matrix,
    cells: list[Cell],
    models: list[str],
    scratch: Path,
    *,
    registry: Registry,
    jobs: int = 2,
    history_path: Path = history.HISTORY,
    root: Path = DRIFT,
    also=(),
    log=print,
) -> list[Outcome]:
    """Run the cells not yet in the history (nor in the drift folders `also`, whose snapshots also
    serve as neighbours); append each one's rows as soon as it and every cell before it are done.
    Returns the outcomes of the cells that ran; `registry` holds the models' specs."""
    platform = machine.platform_key("cpu", None, envinfo.isa_cap())
    done = history.recorded([r for p in (history_path, *(a / "history.csv" for a in also)) for r in history.read(p)])
    todo = []
    for c in sorted(cells, key=matrix.order):
        have = done.get((platform, "cpu", c.backend, c.keras, c.version), set())
        missing = [] if "*" in have else [m for m in models if m not in have]
        if missing:
            todo.append((c, missing))
        else:
            log(f"{c.label}: in the history already, skipped")
    outcomes = []
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [(pool.submit(_execute, matrix, c, ms, registry, scratch, log), ms) for c, ms in todo]
        with activity("drift cells", total=len(todo), unit="cells", log=log) as act:
            for i, (future, ms) in enumerate(futures):  # in matrix order: neighbours first
                act.update(i, note=", ".join(c.label for c, _ in todo[i : i + max(1, jobs)]))
                outcomes.append(_record(future.result(), ms, registry, history_path, root, also, log))
            act.update(len(todo), note="")
    finally:
        pool.shutdown(cancel_futures=True)  # interrupted: queued cells do not start; a rerun resumes
    return outcomes


def _record(
    outcome: Outcome, models: list[str], registry: Registry, history_path: Path, root: Path, also, log
) -> Outcome:
    """Append a finished cell's rows to the history."""
    outcome.rows = rows_for(outcome, models, registry, root, also)
    history.append(outcome.rows, history_path)
    verdicts = sorted({r["verdict"] for r in outcome.rows})
    log(f"{outcome.cell.label}: {', '.join(verdicts)} in {outcome.seconds:.1f} s")
    return outcome

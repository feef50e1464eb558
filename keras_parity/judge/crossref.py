"""The fallback for a model with layers the float64 reference lacks: each backend's outputs
judged against the other backends' of the same run and against its own snapshot, with the
model's tolerance. It is labelled as such in every cell; agreement between backends says
less than agreement with float64 (a change all backends share goes unseen by the first
comparison), which is why the snapshot is judged too, not only reported.
"""

from __future__ import annotations

import numpy as np

from keras_parity.judge.compare import CellResult, compare
from keras_parity.registry.spec import Tol


def _as64(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def _worst(cell: CellResult) -> float:
    return max((m.rel_l2 for m in cell.outputs.values()), default=float("inf"))


def cross_compare(
    cell: CellResult,
    obtained: dict[str, np.ndarray],
    others: dict[str, dict[str, np.ndarray]],
    snapshot: dict[str, np.ndarray] | None,
    tol: Tol,
    gaps: list[str],
) -> CellResult:
    """Fill `cell`: its metrics are those of the comparison furthest off; every comparison
    that fails adds its problems, prefixed by what it compared with."""
    against = {b: arrays for b, arrays in others.items() if arrays}
    if snapshot is not None:
        against["its snapshot"] = snapshot
    cell.reference, cell.tol = "cross-backend", tol
    if not against:
        cell.fail(
            "no float64 reference and nothing to compare with (no other backend in this run, no snapshot); "
            "run all backends or create the snapshots with `nox -s golden`",
            "cross-backend",
        )
        return cell
    results = {}
    for what, ref in against.items():
        sub = CellResult(cell.model, cell.case, cell.backend, cell.device, cell.path)
        snap = snapshot if what == "its snapshot" else None
        results[what] = compare(sub, obtained, _as64(ref), tol, snapshot=snap)
    worst = max(results, key=lambda w: _worst(results[w]))
    cell.outputs = results[worst].outputs
    if snapshot is not None:
        mine = results["its snapshot"]
        cell.snapshot = mine.snapshot
        for key, m in mine.outputs.items():  # the ULP distance to the snapshot, whichever is worst
            if key in cell.outputs:
                out = cell.outputs[key]
                out.ulp_max, out.ulp_scaled, out.bit_identical = m.ulp_max, m.ulp_scaled, m.bit_identical
    for what, sub in results.items():
        for f in sub.findings:
            cell.fail(f"vs {what}: {f.line}", "cross-backend")
    cell.note(
        f"cross-backend fallback: no float64 reference for {', '.join(gaps)}; judged against {', '.join(against)}",
        "cross-backend",
    )
    return cell

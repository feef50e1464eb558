"""The fallback for a model with layers the float64 reference lacks: each backend's outputs
judged against the other backends' of the same run and against its own snapshot, with the
model's tolerance. It is labelled as such in every cell; agreement between backends says
less than agreement with float64 (a change all backends share goes unseen by the first
comparison), which is why the snapshot is judged too, not only reported.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from keras_parity.judge.compare import Comparison, Finding, compare
from keras_parity.registry.spec import Tol


def _as64(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def _worst(found: Comparison) -> float:
    return max((m.rel_l2 for m in found.outputs.values()), default=float("inf"))


def cross_compare(
    obtained: dict[str, np.ndarray],
    others: dict[str, dict[str, np.ndarray]],
    snapshot: dict[str, np.ndarray] | None,
    tol: Tol,
    gaps: list[str],
) -> Comparison:
    """The outputs against each other backend's and the snapshot: the metrics of the comparison
    furthest off; every comparison that fails adds its problems, prefixed by what it compared with."""
    against = {b: arrays for b, arrays in others.items() if arrays}
    if snapshot is not None:
        against["its snapshot"] = snapshot
    if not against:
        why = (
            "no float64 reference and nothing to compare with (no other backend in this run, no snapshot); "
            "run all backends or create the snapshots with `nox -s golden`"
        )
        return Comparison((Finding("cross-backend", why),))
    results = {
        what: compare(obtained, _as64(ref), tol, snapshot=snapshot if what == "its snapshot" else None)
        for what, ref in against.items()
    }
    worst = max(results, key=lambda w: _worst(results[w]))
    outputs, bits = dict(results[worst].outputs), "missing"
    if snapshot is not None:
        mine = results["its snapshot"]
        bits = mine.snapshot
        for key, m in mine.outputs.items():  # the ULP distance to the snapshot, whichever is worst
            if key in outputs:
                outputs[key] = replace(
                    outputs[key], ulp_max=m.ulp_max, ulp_scaled=m.ulp_scaled, bit_identical=m.bit_identical
                )
    findings = [Finding("cross-backend", f"vs {what}: {f.line}") for what, sub in results.items() for f in sub.findings]
    fallback = (
        f"cross-backend fallback: no float64 reference for {', '.join(gaps)}; judged against {', '.join(against)}"
    )
    return Comparison((*findings, Finding("cross-backend", fallback, note=True)), outputs, bits)

"""Your own model's tolerance, from its own float32 noise as measured when its goldens are made.

`golden` runs your model on the backends, and again under an ISA cap (another CPU's kernels);
`measured_noise` keeps, in its reference.json, the largest error any of those runs made against
the float64 reference, and the judge (judge/goldens.py) gives the model MARGIN times it,
as a built-in model gets MARGIN times its measured noise (registry/noise.py). Your --rel-l2
still wins; a model judged across backends (no float64 reference) keeps USER_TOL.
"""

from __future__ import annotations

import numpy as np

from keras_parity import golden
from keras_parity.judge.numerics import rel_l2
from keras_parity.registry.noise import MARGIN, U32
from keras_parity.registry.spec import Tol


def measured_noise(model: str, reference: dict, runs: list) -> dict:
    """A user model's float32 noise, measured when its goldens are made: over every run (the
    backends, and the same under an ISA cap) and path, the largest relative L2 error and the
    largest absolute error of an output against the float64 reference, each floored at float32's
    unit roundoff. Its tolerance is MARGIN times this (`measured_tol`), as a built-in model's."""
    rel, worst, seen = U32, 0.0, []
    for run in runs:
        for path in golden.children(run.arrays, model, "inference"):
            for key, got in golden.part(run.arrays, model, "inference", path).items():
                want = reference.get(golden.key("inference", key))
                if want is None or got.shape != want.shape or not np.all(np.isfinite(got)):
                    continue
                # as the judge measures a cell (calibrate/noise.py's cell_noise, for a forward cell)
                scale = float(np.max(np.abs(want), initial=0.0))
                rel = max(rel, rel_l2(got, want))
                worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)), U32 * scale)
            cap = run.provenance.isa_cap if run.provenance else None
            seen.append(f"{run.backend} {path}" + (f" (ISA cap {cap})" if cap else ""))
    return {"rel_l2": rel, "atol": worst, "runs": seen}


def measured_tol(noise: dict) -> Tol:
    """MARGIN times the noise `measured_noise` recorded in the goldens (replacing USER_TOL)."""
    return Tol(
        MARGIN * noise["rel_l2"],
        MARGIN * noise["atol"],
        0.0,
        f"{MARGIN:g}x the float32 noise measured when its goldens were made "
        f"(rel L2 {noise['rel_l2']:.1e} over {len(noise['runs'])} runs); override with --rel-l2",
    )

"""Whether a case's outputs carry information: outputs that are constant, saturated or the same
for every input pass whatever changed inside the model, so such a case is not trusted.

The check runs on the float64 reference (on the obtained outputs where a model has none);
its finding is a note in the report, and a failure with `parity --strict`.
"""

from __future__ import annotations

import numpy as np

# Relative to the array's largest magnitude: float32 keeps about 7 digits, so values closer
# than this are one value as far as any float32 comparison can tell.
_SAME = 1e-6
FIX = (
    "make its outputs informative: logits instead of probabilities (classifier_activation=None, "
    "no final softmax or sigmoid), smaller weights (the registry's weight_scale) or a wider input range"
)


def why_uninformative(arrays: dict[str, np.ndarray]) -> str | None:
    """The first output that carries no information, and why (None when every one does)."""
    for key in sorted(arrays):
        why = _why(np.asarray(arrays[key], dtype=np.float64))
        if why:
            return f"{key} carries no information: {why}"
    return None


def _why(a: np.ndarray) -> str | None:
    if a.size < 2 or not np.all(np.isfinite(a)):
        return None  # nothing to tell apart, or a NaN the comparison reports itself
    scale = float(np.max(np.abs(a)))
    if scale == 0.0 or np.ptp(a) <= _SAME * scale:
        return f"every value is {a.flat[0]:.6g}"
    if a.ndim >= 2 and a.shape[0] > 1 and np.all(np.abs(a - a[:1]) <= _SAME * scale):
        return f"all {a.shape[0]} inputs give the same output"
    if a.min() < 0.0 or a.max() > 1.0:
        return None
    rows = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a[None, :]
    if rows.shape[1] > 1 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4):  # a softmax's rows
        if np.all(rows.max(axis=1) >= 1.0 - 1e-4):
            return "a saturated softmax, one-hot in every row"
        if np.all(np.ptp(rows, axis=1) <= 1e-3 / rows.shape[1]):
            return "a saturated softmax, uniform in every row"
    if np.all((a <= _SAME) | (a >= 1.0 - _SAME)):
        return "saturated, every value at 0 or 1"
    return None

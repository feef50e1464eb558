"""Float64 goldens that change only when something changed.

The float64 reference (reference.npz, layers.npz) goes through BLAS, and BLAS kernels differ
between CPUs (an AMD machine with OPENBLAS_CORETYPE=Haswell against an Intel one with
AVX-512) in the last bits: up to ~5e-13 relative on ResNet50, and a value that is exactly
zero on one is 1e-300 on the other. A regeneration on another CPU with nothing changed must
leave those files byte for byte as they were, or every intended change comes with a diff in
every reference file. So each new array is compared with the one on disk, and the old one is
kept when they agree to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An array agrees with its old self when every value is within ROUNDING of the largest
# magnitude of its case (every array whose key starts '<case>/': a training case's loss,
# gradients and steps together). 1e-12 is ~5000 float64 ulps and ~1e-5 of a float32 ulp: what
# BLAS kernels produce, and far below anything the float32 judge could see. The case's scale,
# not the array's own, because some arrays are rounding residue: the gradient of a bias that
# BatchNormalization cancels is ~1e-17 where the loss is ~1, and Adam divides that residue by
# its epsilon into a step of ~1e-14 that differs by 100% between two BLAS kernels.
ROUNDING = 1e-12


@dataclass(frozen=True)
class Settled:
    """What regeneration writes for one float64 file, and what moved."""

    arrays: dict[str, np.ndarray]
    kept: int  # arrays whose old bytes are kept (agree to float64 rounding)
    rounding: float  # the largest relative change among the kept ones (0.0: all identical)
    moved: tuple[str, ...]  # keys of the arrays that changed beyond rounding (or are new)


def _largest(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))


def relative_change(old: np.ndarray, new: np.ndarray, scale: float = 0.0) -> float:
    """max |new - old| over max(the old array's largest magnitude, `scale`); 0.0 when equal."""
    a, b = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    diff = np.abs(b - a)
    scale = max(_largest(a), scale)
    biggest = float(np.max(diff, initial=0.0))
    if biggest == 0.0:
        return 0.0
    return biggest / scale if scale > 0.0 else float("inf")


def same_to_rounding(old: np.ndarray, new: np.ndarray, scale: float = 0.0) -> bool:
    """Arrays of the same dtype and shape whose values agree to float64 rounding, on `scale`
    (their case's largest magnitude) when it is larger than their own."""
    if old.dtype != new.dtype or old.shape != new.shape:
        return False
    if old.dtype.kind != "f":
        return np.array_equal(old, new)
    if not np.array_equal(np.isnan(old), np.isnan(new)):
        return False
    finite = np.isfinite(old) & np.isfinite(new)
    if not np.array_equal(old[~finite], new[~finite], equal_nan=True):
        return False
    return relative_change(old[finite], new[finite], scale) <= ROUNDING


def case_scales(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """{case: the largest finite magnitude over the case's float arrays} ('<case>/...' keys)."""
    scales: dict[str, float] = {}
    for key, value in arrays.items():
        if value.dtype.kind == "f":
            case = key.split("/", 1)[0]
            scales[case] = max(scales.get(case, 0.0), _largest(value))
    return scales


def settle(old: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]) -> Settled:
    """`new`, with each array that agrees with `old`'s to float64 rounding replaced by the old
    one (so an unchanged file is rewritten with the same bytes, that is, not at all)."""
    if old is None:
        return Settled(dict(new), 0, 0.0, tuple(sorted(new)))
    out, kept, rounding, moved = {}, 0, 0.0, []
    scales = case_scales(old)
    for key, value in new.items():
        value = np.ascontiguousarray(value)  # as the file stores it (a 0-d array as shape (1,))
        before, scale = old.get(key), scales.get(key.split("/", 1)[0], 0.0)
        if before is not None and same_to_rounding(before, value, scale):
            out[key], kept = before, kept + 1
            if before.dtype.kind == "f":
                finite = np.isfinite(before)
                rounding = max(rounding, relative_change(before[finite], value[finite], scale))
        else:
            out[key] = value
            moved.append(key)
    return Settled(out, kept, rounding, tuple(sorted(moved)))

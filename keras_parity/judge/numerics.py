"""The numbers every stage compares by, in one place: relative L2 error against a reference,
bit distances between float32 arrays (per element, and scaled to the array), training
outputs pooled by group."""

from __future__ import annotations

import math

import numpy as np

from keras_parity import golden


def sum_of_squares(a: np.ndarray) -> float:
    """The sum of the squares of `a`'s values in float64: every norm, RMS and relative error of
    the judge is computed from it, with the same bits on every CPU.

    Not np.linalg.norm, np.dot, @ or einsum: those call BLAS, whose kernel (OpenBLAS picks one
    by CPU, or by OPENBLAS_CORETYPE) sums in another order on another machine, and the last
    bits of a report's numbers followed it. NumPy's own sum is a pairwise sum in a fixed
    order, the same C code under every SIMD extension, and fast enough, unlike math.fsum
    (docs/measurements.md)."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)  # one flat run in C order, whatever the layout
    return float(np.add.reduce(np.square(x)))


def l2_norm(a: np.ndarray) -> float:
    """||a||, from sum_of_squares."""
    return math.sqrt(sum_of_squares(a))


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    """||got - want|| / ||want|| in float64 (the absolute norm when `want` is all zeros)."""
    norm = l2_norm(want)
    diff = l2_norm(got.astype(np.float64) - want)
    return diff / norm if norm else diff


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between float32 arrays (0 for bit-equal, incl. NaN==NaN)."""
    ia = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    ib = np.ascontiguousarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    # Map sign-magnitude to a monotonic integer line so adjacent floats differ by 1.
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def scaled_ulp(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference between `a` and its snapshot `b`, in units in the last place of
    the largest magnitude in either: 1.0 is one rounding step of the array's biggest value.

    Per-element ULPs blow up near zero (a gradient of 1e-30 against 0 is 2e8 ULPs apart
    though both are nothing at the array's scale); this figure reads the same whatever the
    array holds. 0.0 exactly when every finite value is bit-equal; inf when NaN/Inf differ."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb) or not np.array_equal(a[~fa], b[~fb], equal_nan=True):
        return float("inf")
    diff = np.abs(a[fa].astype(np.float64) - b[fb].astype(np.float64))
    if not diff.size or not diff.max():
        return 0.0
    scale = max(float(np.abs(a[fa]).max()), float(np.abs(b[fb]).max()))
    return float(diff.max() / np.spacing(np.float32(scale)))


def max_ulp(a: dict[str, np.ndarray], b: dict[str, np.ndarray], keys=None) -> int:
    """The largest ULP distance between same-named arrays of `a` and `b` (over `keys`, default
    all of `a`'s); 0 when every one is bit-identical."""
    return max((int(ulp_distance(a[k], b[k]).max(initial=0)) for k in (a if keys is None else keys)), default=0)


# The training path judges each array on its own scale (registry/noise.py, judge/compare.py).
# An array whose RMS is below ZERO_BELOW of its group's is judged on that floor instead: its
# own values are rounding residue (a gradient BatchNormalization makes exactly zero), and
# relative to themselves any error would read as huge.
ZERO_BELOW = 1e-4


def rms(a: np.ndarray) -> float:
    """Root mean square, the scale training outputs are judged in."""
    a = np.asarray(a)
    return math.sqrt(sum_of_squares(a) / a.size) if a.size else float("nan")


def array_scale(ref: np.ndarray, group_rms: float) -> float:
    return max(rms(ref), ZERO_BELOW * group_rms)


def array_error(got: np.ndarray, want: np.ndarray, scale: float) -> tuple[float, float]:
    """(RMS of the error, largest error), both in units of `scale`: an array's relative L2
    error and its worst element when `scale` is the array's own RMS."""
    d = np.abs(got.astype(np.float64) - want)
    if not scale:
        return 0.0, 0.0
    return rms(d) / scale, float(d.max(initial=0.0)) / scale


def top5_overlap(out: np.ndarray, ref: np.ndarray) -> float:
    """The mean share of each sample's five largest outputs that the reference's five share."""
    o = np.argsort(-out.reshape(out.shape[0], -1), axis=1)[:, :5]
    r = np.argsort(-ref.reshape(ref.shape[0], -1), axis=1)[:, :5]
    return float(np.mean([len(set(a) & set(b)) / 5.0 for a, b in zip(o, r)]))


def pool(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Training outputs by group ('grad/dense/kernel' -> 'grad'), each group's arrays flattened
    and joined in key order: one vector per quantity (see keras_parity/run/training.py)."""
    groups: dict[str, list[str]] = {}
    for key in sorted(arrays):
        groups.setdefault(golden.head(key), []).append(key)
    return {g: np.concatenate([np.ravel(arrays[k]) for k in keys]) for g, keys in groups.items()}


def locate(arrays: dict[str, np.ndarray], group: str, flat: int) -> str:
    """'<key>[i, j]' of position `flat` in group's pooled vector."""
    for key in sorted(k for k in arrays if golden.head(k) == group):
        if flat < arrays[key].size:
            return f"{key}{[int(i) for i in np.unravel_index(flat, arrays[key].shape)] if arrays[key].ndim else ''}"
        flat -= arrays[key].size
    return group


def ulp_from(snapshot: np.ndarray | None, out: np.ndarray) -> tuple[int | None, float | None, bool]:
    """How far an output moved from its snapshot: the largest ULP distance, the distance in ULPs
    of the array's largest magnitude, and whether it is bit identical; (None, None, False) when
    there is no snapshot of its shape."""
    if snapshot is None or snapshot.shape != out.shape:
        return None, None, False
    ulp = ulp_distance(out, snapshot)
    ulp_max = int(ulp.max()) if ulp.size else 0
    return ulp_max, scaled_ulp(out, snapshot), ulp_max == 0

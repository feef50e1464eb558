"""One compare(): keys, then shape, then dtype, then values, for one cell.

A cell is (model case, backend, device, path). Values are judged against the float64
reference with the case's tolerance; the backend's own float32 snapshot is compared bit
for bit (ULP distance) and only reported, since it tracks drift rather than correctness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from keras_parity.spec import Tol


@dataclass
class OutputMetrics:
    max_abs: float
    max_rel: float
    rel_l2: float
    nan: int
    inf: int
    ulp_max: int | None = None  # vs the snapshot; None when there is none to compare
    bit_identical: bool | None = None
    top5: float | None = None  # mean top-5 overlap with the reference, classifiers only
    worst_index: list[int] | None = None


@dataclass
class CellResult:
    model: str
    case: str
    backend: str
    device: str
    path: str
    status: str = "pass"  # pass | fail | error
    problems: list[str] = field(default_factory=list)
    outputs: dict[str, OutputMetrics] = field(default_factory=dict)
    snapshot: str = "missing"  # identical | changed | missing | other-platform
    tol: Tol | None = None
    rounding: str | None = None  # rounding | semantic | unclassified, from a float64 run
    float64_rel_l2: float | None = None
    determinism: str | None = None  # deterministic | how far repeated runs moved
    policy: str = "float32"  # the dtype policy the cell ran under

    @property
    def name(self) -> str:
        return f"{self.model}/{self.case}"

    def fail(self, msg: str) -> None:
        self.status = "fail" if self.status != "error" else "error"
        self.problems.append(msg)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        return d


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between float32 arrays (0 for bit-equal, incl. NaN==NaN)."""
    ia = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    ib = np.ascontiguousarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    # Map sign-magnitude to a monotonic integer line so adjacent floats differ by 1.
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def max_ulp(a: dict[str, np.ndarray], b: dict[str, np.ndarray], keys=None) -> int:
    """The largest ULP distance between same-named arrays of `a` and `b` (over `keys`, default
    all of `a`'s); 0 when every one is bit-identical."""
    return max((int(ulp_distance(a[k], b[k]).max(initial=0)) for k in (a if keys is None else keys)), default=0)


def _top5(out: np.ndarray, ref: np.ndarray) -> float:
    o = np.argsort(-out.reshape(out.shape[0], -1), axis=1)[:, :5]
    r = np.argsort(-ref.reshape(ref.shape[0], -1), axis=1)[:, :5]
    return float(np.mean([len(set(a) & set(b)) / 5.0 for a, b in zip(o, r)]))


def value_metrics(out: np.ndarray, ref: np.ndarray) -> OutputMetrics:
    o64 = out.astype(np.float64)
    diff = np.abs(o64 - ref)
    finite = np.isfinite(diff)
    d = np.where(finite, diff, np.inf)
    rel = d / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    norm = np.linalg.norm(ref)
    return OutputMetrics(
        max_abs=float(d.max()) if d.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        rel_l2=float(np.linalg.norm(np.where(finite, diff, np.inf)) / norm) if norm else float(np.linalg.norm(diff)),
        nan=int(np.isnan(out).sum()),
        inf=int(np.isinf(out).sum()),
        worst_index=[int(i) for i in np.unravel_index(int(np.argmax(d)), d.shape)] if d.size else None,
    )


def compare(
    cell: CellResult,
    obtained: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tol: Tol,
    *,
    expected_dtype: str = "float32",
    snapshot: dict[str, np.ndarray] | None = None,
    classifier: bool = False,
) -> CellResult:
    """Fill `cell` from obtained outputs vs the reference (and the snapshot, if any)."""
    cell.tol = tol
    if set(obtained) != set(reference):
        missing, extra = sorted(set(reference) - set(obtained)), sorted(set(obtained) - set(reference))
        cell.fail(f"output keys differ: missing {missing}, unexpected {extra}")
        return cell
    for key in sorted(reference):
        out, ref = obtained[key], reference[key]
        if out.shape != ref.shape:
            cell.fail(f"{key}: shape {out.shape} != reference {ref.shape}")
            continue
        if ref.dtype != np.float64:
            cell.fail(
                f"{key}: the reference golden has dtype {ref.dtype}, not float64; regenerate with `nox -s golden`"
            )
            continue
        if out.dtype != np.dtype(expected_dtype):
            cell.fail(f"{key}: dtype {out.dtype} != expected {expected_dtype}")
            continue
        m = value_metrics(out, ref)
        if m.nan or m.inf:
            cell.fail(f"{key}: {m.nan} NaN and {m.inf} Inf in the output")
        elif m.rel_l2 > tol.rel_l2:
            cell.fail(f"{key}: relative L2 error {m.rel_l2:.2e} > {tol.rel_l2:.0e}")
        else:
            bad = np.abs(out.astype(np.float64) - ref) > tol.atol + tol.rtol * np.abs(ref)
            if bad.any():
                cell.fail(
                    f"{key}: {int(bad.sum())} of {bad.size} values outside "
                    f"atol {tol.atol:.0e} + rtol {tol.rtol:.0e}, worst at {m.worst_index}"
                )
        if classifier:
            m.top5 = _top5(out, ref)
        if snapshot is not None:
            snap = snapshot.get(key)
            if snap is None or snap.shape != out.shape:
                m.bit_identical = False
            else:
                ulp = ulp_distance(out, snap)
                m.ulp_max = int(ulp.max()) if ulp.size else 0
                m.bit_identical = m.ulp_max == 0
        cell.outputs[key] = m
    if snapshot is not None and cell.outputs:
        same = all(m.bit_identical for m in cell.outputs.values())
        cell.snapshot = "identical" if same else "changed"
    return cell

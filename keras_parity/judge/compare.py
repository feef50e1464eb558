"""One compare(): keys, then shape, then dtype, then values, for one cell.

A cell is (model case, backend, device, path). Values are judged against the float64
reference with the case's tolerance; the backend's own float32 snapshot is compared bit
for bit (ULP distance) and only reported, since it tracks drift rather than correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

import numpy as np

from keras_parity import golden
from keras_parity.judge.numerics import array_error, array_scale, l2_norm, locate, pool, rms, top5_overlap, ulp_from
from keras_parity.registry.spec import Tol


@dataclass(frozen=True)
class OutputMetrics:
    max_abs: float
    max_rel: float
    rel_l2: float
    nan: int
    inf: int
    ulp_max: int | None = None  # vs the snapshot, per element (raw); None when there is none
    ulp_scaled: float | None = None  # vs the snapshot, in ULPs of the array's largest magnitude
    bit_identical: bool | None = None
    top5: float | None = None  # mean top-5 overlap with the reference, classifiers only
    worst_index: list[int] | None = None


@dataclass(frozen=True)
class Finding:
    """One thing a stage found about a cell. A problem (note=False) is why the cell does not
    pass, the cell's status saying how (fail, error, unsupported, skipped); a note is reported
    beside the cell and changes nothing. `kind` names the stage or check that found it."""

    kind: str  # compare, provenance, config, policy, backend, twin, cross-backend, localize, rounding, ...
    message: str  # what was found
    note: bool = False
    fix: str = ""  # what makes it go away, a clause of its own ('fix with ...')
    brief: str = ""  # a few words for a failure's one line, where a finding adds to another's

    @property
    def short(self) -> str:
        return self.brief or self.message

    @property
    def line(self) -> str:
        """What was found, then its fix."""
        return f"{self.message}; {self.fix}" if self.fix else self.message

    def text(self) -> str:
        """The line the JSON keeps ('note: ' before a note)."""
        return f"note: {self.line}" if self.note else self.line

    @classmethod
    def from_text(cls, text: str) -> Finding:
        """Back from a report's line (results merged from JSON written earlier)."""
        note = text.startswith("note: ")
        return cls("report", text[6:] if note else text, note)


class CellStatus(StrEnum):
    """A cell's verdict; its value is what the report and the JSON print."""

    PASS = "pass"
    FAIL = "fail"  # a problem: the numbers, a moved default, a changed definition
    ERROR = "error"  # no result: the backend or the goldens failed
    UNSUPPORTED = "unsupported"  # the backend cannot run the cell's dtype policy
    SKIPPED = "skipped"  # nothing to run (no twin of the model, no GPU for a variant)


VALUE_KINDS = ("compare", "cross-backend", "layers")  # the findings about a cell's numbers
USAGE = "usage"  # the kind of an error the user fixes in their files, inputs or custom objects (exit 2)


def verdict(findings: Iterable[Finding], error: bool = False) -> CellStatus:
    """The status of a cell with these findings: an error stays an error, a problem fails it."""
    if error:
        return CellStatus.ERROR
    return CellStatus.FAIL if any(not f.note for f in findings) else CellStatus.PASS


@dataclass(frozen=True)
class CellId:
    """Which cell: the fields that tell one cell of a parity run from every other."""

    model: str
    case: str
    backend: str
    path: str
    policy: str = "float32"
    variant: str = ""


@dataclass(frozen=True)
class CellResult:
    """One judged cell, built once with everything found of it; a later stage builds a new one."""

    model: str
    case: str
    backend: str
    device: str
    path: str
    status: CellStatus = CellStatus.PASS
    findings: tuple[Finding, ...] = ()
    outputs: dict[str, OutputMetrics] = field(default_factory=dict)
    snapshot: str = "missing"  # identical | changed | missing | other-platform
    snapshot_platform: str | None = None  # the other platform's key, when compared with one
    tol: Tol | None = None
    rounding: str | None = None  # rounding | semantic | unclassified, from a float64 run
    float64_rel_l2: float | None = None
    determinism: str | None = None  # deterministic | how far repeated runs moved
    policy: str = "float32"  # the dtype policy the cell ran under
    variant: str = ""  # a GPU variant of the run (keras_parity/diagnose/gpu.py): 'tf32', 'lstm-no-cudnn'
    reference: str = "float64"  # or 'cross-backend': a user model the reference lacks layers for

    @property
    def conditions(self) -> str:
        """What the cell ran under besides its path (policy, GPU variant, reference): ' [tf32]', or ''."""
        extra = [x for x in (self.policy if self.policy != "float32" else "", self.variant) if x]
        extra += ["cross-backend"] if self.reference != "float64" else []
        return f" [{', '.join(extra)}]" if extra else ""

    @property
    def label(self) -> str:
        """The path, with the policy and variant a cell ran under: 'predict [tf32]'."""
        return self.path + self.conditions

    @property
    def name(self) -> str:
        return f"{self.model}/{self.case}"

    @property
    def id(self) -> CellId:
        return CellId(self.model, self.case, self.backend, self.path, self.policy, self.variant)

    @property
    def problems(self) -> list[str]:
        """Every finding as the report's line, in the order found."""
        return [f.text() for f in self.findings]

    @property
    def verdict(self) -> str:
        """Its status for the exit code (exitcodes.from_verdicts): an error of the user's own
        files or inputs reads 'usage'."""
        if self.status == CellStatus.ERROR and any(f.kind == USAGE for f in self.findings):
            return USAGE
        return str(self.status)

    @property
    def values_failed(self) -> bool:
        """Its numbers failed (against the reference or across backends), which a layer profile
        and a float64 run can explain; a moved default or a provenance problem they cannot."""
        return any(not f.note and f.kind in VALUE_KINDS for f in self.findings)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("findings")
        d["problems"] = self.problems
        d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CellResult:
        """A cell read back from parity.json (as_dict's inverse)."""
        d = {k: v for k, v in d.items() if k != "name"}
        d["findings"] = tuple(Finding.from_text(p) for p in d.pop("problems", []))
        d["outputs"] = {k: OutputMetrics(**m) for k, m in d.get("outputs", {}).items()}
        d["tol"] = Tol(**d["tol"]) if d.get("tol") else None
        d["status"] = CellStatus(d.get("status", "pass"))
        return cls(**d)


def value_metrics(out: np.ndarray, ref: np.ndarray) -> OutputMetrics:
    o64 = out.astype(np.float64)
    diff = np.abs(o64 - ref)
    finite = np.isfinite(diff)
    d = np.where(finite, diff, np.inf)
    rel = d / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    norm = l2_norm(ref)
    return OutputMetrics(
        max_abs=float(d.max()) if d.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        rel_l2=l2_norm(d) / norm if norm else l2_norm(diff),
        nan=int(np.isnan(out).sum()),
        inf=int(np.isinf(out).sum()),
        worst_index=[int(i) for i in np.unravel_index(int(np.argmax(d)), d.shape)] if d.size else None,
    )


@dataclass(frozen=True)
class Comparison:
    """What compare() finds of one cell's outputs, from which the judge builds the cell."""

    findings: tuple[Finding, ...] = ()  # problems, in the order found
    outputs: dict[str, OutputMetrics] = field(default_factory=dict)
    snapshot: str = "missing"  # identical | changed | missing
    nothing: bool = False  # no output and no reference: the cell is an error

    @property
    def status(self) -> CellStatus:
        return verdict(self.findings, self.nothing)

    @property
    def problems(self) -> list[str]:
        return [f.text() for f in self.findings]


def compare(
    obtained: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tol: Tol,
    *,
    expected_dtype: str = "float32",
    snapshot: dict[str, np.ndarray] | None = None,
    classifier: bool = False,
    pooled: bool = False,
    per_array: dict[str, Tol] | None = None,
) -> Comparison:
    """Obtained outputs vs the reference (and the snapshot, if any).

    pooled (training cases): after the per-key checks of shape and dtype, values are judged
    per group, rel L2 over the group and atol in units of the group's reference RMS; with
    `per_array` (a tolerance for every array, in units of its scale), each array too."""
    if not obtained and not reference:  # nothing compared is never a pass
        why = "nothing to compare: the run wrote no output for this cell and the goldens hold no reference"
        fix = "regenerate the goldens with `nox -s golden` and check the backend's log"
        return Comparison((Finding("compare", why, fix=fix),), nothing=True)
    if set(obtained) != set(reference):
        missing, extra = sorted(set(reference) - set(obtained)), sorted(set(obtained) - set(reference))
        return Comparison((Finding("compare", f"output keys differ: missing {missing}, unexpected {extra}"),))
    unfit = {key: _unfit(key, obtained[key], reference[key], expected_dtype) for key in sorted(reference)}
    findings = [Finding("compare", why) for why in unfit.values() if why]
    usable = [key for key, why in unfit.items() if why is None]
    if pooled:
        if len(usable) < len(reference):  # a group with a bad member cannot be pooled
            return Comparison(tuple(findings))
        outputs, problems = _compare_pooled(obtained, reference, tol, snapshot, per_array)
        return _comparison(findings + problems, outputs, snapshot)
    outputs = {}
    for key in usable:
        snap = snapshot.get(key) if snapshot else None
        outputs[key], problem = _judge(key, obtained[key], reference[key], tol, classifier, snap, snapshot is not None)
        findings += [problem] if problem else []
    return _comparison(findings, outputs, snapshot)


def _comparison(findings: list[Finding], outputs: dict[str, OutputMetrics], snapshot: dict | None) -> Comparison:
    """The comparison with its snapshot verdict: bit for bit the same, or changed."""
    verdict_of_bits = "missing"
    if snapshot is not None and outputs:
        verdict_of_bits = "identical" if all(m.bit_identical for m in outputs.values()) else "changed"
    return Comparison(tuple(findings), outputs, verdict_of_bits)


def _compare_pooled(
    obtained: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tol: Tol,
    snapshot: dict[str, np.ndarray] | None,
    per_array: dict[str, Tol] | None,
) -> tuple[dict[str, OutputMetrics], list[Finding]]:
    """A training cell: each group judged, then (with `per_array`) each array against its own."""
    ref_pool, snap_pool = pool(reference), None
    if snapshot is not None and set(snapshot) == set(reference):
        snap_pool = pool(snapshot)
    groups_out, group_rms = pool(obtained), {g: rms(r) for g, r in ref_pool.items()}
    outputs, problems = {}, []
    for g in sorted(ref_pool):
        group_tol = Tol(tol.rel_l2, tol.atol * group_rms[g], tol.rtol, tol.why)
        snap = None if snap_pool is None else snap_pool[g]
        where = lambda flat, g=g: locate(reference, g, flat)
        outputs[g], problem = _judge(g, groups_out[g], ref_pool[g], group_tol, False, snap, snapshot is not None, where)
        problems += [problem] if problem else []
    if per_array is not None and set(per_array) >= set(reference):
        for key in sorted(reference):
            scale = array_scale(reference[key], group_rms[golden.head(key)])
            why = _judge_array(key, obtained[key], reference[key], per_array[key], scale)
            problems += [Finding("compare", why)] if why else []
    return outputs, problems


def _judge_array(key: str, out: np.ndarray, ref: np.ndarray, tol: Tol, scale: float) -> str | None:
    """One array of a training cell against its own tolerance, errors in units of its scale
    (numerics.array_scale: its RMS, or its group's floor for an array of rounding residue)."""
    rel, worst = array_error(out, ref, scale)
    if not (np.isfinite(rel) and np.isfinite(worst)):
        return None  # NaN and Inf are counted and failed on the group
    if rel > tol.rel_l2:
        return f"{key}: relative L2 error {rel:.2e} > {tol.rel_l2:.1e}, this array's tolerance ({tol.why})"
    if worst > tol.atol:
        diff = np.abs(out.astype(np.float64) - ref)
        where = [int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)] if diff.ndim else []
        return f"{key}: error {worst:.2e} of its RMS at {where} > {tol.atol:.1e}, this array's tolerance"
    return None


def _unfit(key: str, out: np.ndarray, ref: np.ndarray, expected_dtype: str) -> str | None:
    """Why an output cannot be judged by value: its shape, then the reference's dtype, then its own."""
    if out.shape != ref.shape:
        return f"{key}: shape {out.shape} != reference {ref.shape}"
    if ref.dtype != np.float64:
        return f"{key}: the reference golden has dtype {ref.dtype}, not float64; regenerate with `nox -s golden`"
    if out.dtype != np.dtype(expected_dtype):
        return f"{key}: dtype {out.dtype} != expected {expected_dtype}"
    return None


def _judge(
    key: str,
    out: np.ndarray,
    ref: np.ndarray,
    tol: Tol,
    classifier: bool,
    snap: np.ndarray | None,
    snapshot: bool,
    where: Callable[[int], str] | None = None,
) -> tuple[OutputMetrics, Finding | None]:
    """Values of one output (or one pooled group) against the reference, then the snapshot:
    its metrics, and the problem they show, if any."""
    m = value_metrics(out, ref)
    worst = where(int(np.argmax(np.abs(out.astype(np.float64) - ref)))) if where and out.size else m.worst_index
    problem = None
    if m.nan or m.inf:
        problem = f"{key}: {m.nan} NaN and {m.inf} Inf in the output"
    elif m.rel_l2 > tol.rel_l2:
        problem = f"{key}: relative L2 error {m.rel_l2:.2e} > {tol.rel_l2:.0e}" + (
            f", worst at {worst}" if where else ""
        )
    else:
        bad = np.abs(out.astype(np.float64) - ref) > tol.atol + tol.rtol * np.abs(ref)
        if bad.any():
            problem = (
                f"{key}: {int(bad.sum())} of {bad.size} values outside "
                f"atol {tol.atol:.0e} + rtol {tol.rtol:.0e}, worst at {worst}"
            )
    if classifier:
        m = replace(m, top5=top5_overlap(out, ref))
    if snapshot:
        ulp_max, ulp_scaled, same = ulp_from(snap, out)
        m = replace(m, ulp_max=ulp_max, ulp_scaled=ulp_scaled, bit_identical=same)
    return m, Finding("compare", problem) if problem else None

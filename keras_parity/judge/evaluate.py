"""Judge every cell of a run against the goldens: the data flow's compare step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.judge.compare import (
    USAGE,
    CellResult,
    CellStatus,
    Comparison,
    Finding,
    OutputMetrics,
    compare,
    verdict,
)
from keras_parity.judge.crossref import cross_compare
from keras_parity.judge.defaults import NOT_RECORDED, cell_defaults, moved_defaults
from keras_parity.judge.goldens import Goldens, read_goldens, regen_command
from keras_parity.judge.information import FIX as INFORMATION_FIX
from keras_parity.judge.information import why_uninformative
from keras_parity.judge.layers import judge_layers
from keras_parity.judge.weights import changed as changed_weights
from keras_parity.judge.weights import describe as describe_weights
from keras_parity.registry import usermodel
from keras_parity.registry.spec import Registry
from keras_parity.run.launch import BackendRun


def _load_snapshot(model: str, run: BackendRun, root: Path):
    """(arrays, 'same'|'other-platform', platform) for this backend, or (None, 'missing', None)."""
    identity = run.provenance.identity() if run.provenance else golden.snapshot_identity({})
    path, where = golden.find_snapshot(model, run.platform or "", run.backend, identity, root)
    if path is None:
        return None, where, None
    return golden.read_npz(path), where, path.parent.name


def _check_provenance(
    model: str, ref_meta: dict, run: BackendRun, regen: str, weights_named: bool = False
) -> tuple[list[str], list[str]]:
    """Weights/inputs must be the ones the goldens were made from; a config change is a note.
    `regen` says how these goldens are made again; `weights_named`: changed weights are reported
    variable by variable (_weights_changed), not by checksum here."""
    problems, notes = [], []
    got = run.models[model]
    for builder, b in got.builders.items():
        want = ref_meta.get("builders", {}).get(builder, {})
        if want.get("weights_sha256") != b.weights_sha256 and not weights_named:
            problems.append(
                f"weights of '{builder}' are not the ones the goldens were made from "
                f"(sha256 {b.weights_sha256} != {want.get('weights_sha256')}); "
                f"if the change is intended, regenerate with {regen}"
            )
        if want.get("config_sha256") not in (None, b.config_sha256):
            notes.append(f"model definition of '{builder}' changed since the goldens were made")
    for case, digest in got.inputs_sha256.items():
        if ref_meta.get("inputs_sha256", {}).get(case) != digest:
            problems.append(f"inputs of case '{case}' changed since the goldens were made; regenerate with {regen}")
    return problems, notes


# How a backend says it has no kernel for a dtype: a crash under a dtype policy is that
# policy's limitation (UNSUPPORTED) only when its message reads like one of these and names the
# dtype; any other crash under a policy is an ERROR like under float32.
_NO_KERNEL = re.compile(
    r"not implemented for|no kernel|no registered|not supported|unsupported|does not support|"
    r"expected scalar type|could not find|not available",
    re.IGNORECASE,
)
_DTYPE = re.compile(r"half|float16|bfloat16|bf16|double|float64|f16|f64", re.IGNORECASE)


def policy_limitation(message: str) -> bool:
    """Whether a crash under a dtype policy says the backend lacks that dtype (see _NO_KERNEL)."""
    return bool(_NO_KERNEL.search(message) and _DTYPE.search(message))


KERAS_CASTS = (
    "Keras casts momentum and Adam's betas through float32 in its update rules "
    "(ops.cast of a Python float), so float64 optimizer steps carry their float32 rounding"
)


def _defaults_moved(g: Goldens, case, run: BackendRun) -> list[Finding]:
    """The Keras defaults this cell uses that moved since the goldens (judge/defaults.py)."""
    got = cell_defaults(run.models[g.model].as_json(), case.builder, case.mode)
    if got is None:  # a twin's run: no Keras classes
        return []
    want = cell_defaults(g.ref_json, case.builder, case.mode)
    if want is None:
        return [Finding("default", NOT_RECORDED, note=True)]
    return moved_defaults(want, got, g.regen)


@dataclass(frozen=True)
class Judging:
    """How a run's cells are judged: its dtype policy and precision, its cases, how strictly."""

    policy: str = "float32"
    training: bool = True  # the training-path cases were run
    precision: str = "float32"  # a GPU variant's compute precision ('tf32')
    strict: bool = False  # a case whose outputs carry no information fails (else a note)
    strict_bits: bool = False  # a moved bit against this platform's own snapshot fails


PLAIN = Judging()


def evaluate(
    runs: dict[str, BackendRun],
    models: list[str],
    registry: Registry,
    root: Path = golden.GOLDEN,
    policy: str = "float32",
    training: bool = True,
    precision: str = "float32",
    strict: bool = False,
    strict_bits: bool = False,
) -> list[CellResult]:
    """Cells of `runs` against the goldens; a run under another dtype policy gets that policy's
    tolerance, and no snapshot (snapshots are float32). `registry` holds the models' specs.
    Nothing is written: obtained_outputs() says what the failing cells leave beside the goldens."""
    judging = Judging(policy, training, precision, strict, strict_bits)
    cells: list[CellResult] = []
    for model in models:
        g = read_goldens(model, root, registry[model])
        for backend in runs:
            cells += judge_backend(g, backend, runs, judging)
    return cells


def obtained_outputs(
    runs: dict[str, BackendRun], cells: list[CellResult], registry: Registry, root: Path = golden.GOLDEN
) -> dict[Path, dict[str, np.ndarray]]:
    """The arrays each model's failing cells obtained on a backend, by the file beside its
    goldens they go to (golden.write_obtained); empty for a model and backend whose cells pass."""
    obtained: dict[Path, dict[str, np.ndarray]] = {}
    for c in cells:
        beside = golden.obtained_path(c.model, c.backend, usermodel.root_of(registry[c.model], root))
        arrays = obtained.setdefault(beside, {})
        if c.status != CellStatus.PASS:
            got = runs[c.backend].cell(c.model, c.case, c.path)
            arrays.update({golden.key(c.case, c.path, k): v for k, v in got.items()})
    return obtained


def judge_backend(g: Goldens, backend: str, runs: dict[str, BackendRun], judging: Judging = PLAIN) -> list[CellResult]:
    """One backend's cells of the model: each case and path, or one cell for the whole run."""
    whole = _whole_run_cell(g, backend, runs[backend], judging.policy)
    if whole is not None:
        return [whole]
    return _judge_run(g, backend, runs[backend], runs, judging)


def _whole_run_cell(g: Goldens, backend: str, run: BackendRun, policy: str) -> CellResult | None:
    """The one cell standing for a whole run of the model when it cannot be judged case by
    case: a twin skipped, a backend or goldens error, a policy the backend cannot run."""
    model, device = g.model, run.device
    model_error = None if run.error else run.errors.get(model)
    problem = run.error or model_error or g.error
    if problem is None and model not in run.models:
        problem = f"model '{model}' was not run"
    twin = run.twin
    if twin and g.spec.source:
        why = f"{backend}: twins exist for the built-in models only; {model} is your own"
        return CellResult(model, "*", backend, device, "native", CellStatus.SKIPPED, (Finding("twin", why),))
    if twin and not g.error and not run.error and model in run.no_twin:
        why = run.no_twin[model]
        return CellResult(model, "*", backend, device, "native", CellStatus.SKIPPED, (Finding("twin", why),))
    if not problem:
        return None
    who = f"{backend} failed on {model}: " if model_error else ""
    if policy != "float32" and model_error and policy_limitation(model_error):  # the policy, not the backend
        limitation = Finding("policy", f"unsupported under {policy}: {problem}")
        return CellResult(model, "*", backend, device, "*", CellStatus.UNSUPPORTED, (limitation,), policy=policy)
    kind = USAGE if model_error and model in run.usage_errors else "backend"  # the user's files: exit 2
    crash = Finding(kind, who + problem)
    return CellResult(model, "*", backend, device, "*", CellStatus.ERROR, (crash,), policy=policy)


@dataclass(frozen=True)
class _Seen:
    """What holds for every cell of one backend's run of a model: its snapshot, and the findings
    of its provenance (problems, changed weights, then notes)."""

    snapshot: dict | None
    where: str  # same | other-platform | missing
    platform: str | None
    findings: tuple[Finding, ...]
    no_bits: Finding | None = None  # --strict-bits with no usable snapshot of this platform: an ERROR


def _judge_run(g: Goldens, backend: str, run: BackendRun, runs: dict, judging: Judging) -> list[CellResult]:
    """Every cell of one backend's run of the model, in case and path order."""
    weights = _weights_changed(g, run)
    provenance, notes = _check_provenance(g.model, g.ref_json, run, g.regen, weights_named=weights is not None)
    plain, unreadable = judging.policy == judging.precision == "float32", None
    try:
        snapshot, where, snap_platform = _load_snapshot(g.model, run, g.root) if plain else (None, "missing", None)
    except golden.GoldenError as exc:
        snapshot, where, snap_platform, unreadable = None, "missing", None, exc.problem
        notes.append(str(exc) if not judging.strict_bits else f"{exc.problem}; record it anew with {g.finish}")
    found = [Finding("provenance", p) for p in provenance] + ([weights] if weights is not None else [])
    found += [Finding("provenance", n, note=True) for n in [*notes, *g.notes]]
    no_bits = _no_bits(g, run, where, unreadable) if judging.strict_bits and plain and not run.twin else None
    seen = _Seen(snapshot, where, snap_platform, tuple(found), no_bits)
    cells = []
    for case in g.spec.cases_for(judging.policy, judging.training):
        if run.twin and case.name not in (run.models[g.model].cases or []):
            continue  # twins run the forward cases
        for path in run.paths(g.model, case.name) or ["?"]:
            cells.append(_judge_cell(g, backend, case, path, runs, judging, seen))
    return cells


def _judge_cell(g: Goldens, backend: str, case, path: str, runs: dict, judging: Judging, seen: _Seen) -> CellResult:
    """One cell, built once: its values, then its layers, information, provenance and defaults."""
    run, policy = runs[backend], judging.policy
    dtype = judging.precision if judging.precision != "float32" else policy  # a GPU variant (TF32): its precision
    snap = None if seen.snapshot is None else golden.part(seen.snapshot, case.name, path)
    tol = g.spec.tolerance(backend, run.device, dtype, case, path)
    per_array = g.spec.array_tolerances(case, path, run.device, dtype) or None
    values = _values(g, backend, case, path, runs, (tol, per_array), snap, policy)
    findings, bits, snap_platform = list(values.findings), values.snapshot, None
    if seen.snapshot is not None and seen.where == "other-platform":
        bits, snap_platform = "other-platform", seen.platform
    elif judging.strict_bits and bits == "changed":
        findings.append(_moved_bits(values.outputs, run.platform or "?", g))
    findings += [seen.no_bits] if seen.no_bits else []
    if case.model_outputs:
        layers = golden.part(run.sketches, g.model, case.name), golden.part(g.layers, case.name)
        order = g.layer_order.get(case.builder, [])
        deep = judge_layers(*layers, g.spec.layer_tolerances(case, run.device, dtype), order)
        findings += [deep] if deep is not None else []
    if not case.training:
        uninformative = why_uninformative(golden.part(g.ref, case.name) or run.cell(g.model, case.name, path))
        if uninformative:
            findings.append(Finding("information", uninformative, note=not judging.strict, fix=INFORMATION_FIX))
    findings += [*seen.findings, *_defaults_moved(g, case, run)]
    if case.mode in ("sgd", "adam") and policy == "float64" and verdict(findings, values.nothing) == CellStatus.FAIL:
        findings.append(Finding("keras-casts", KERAS_CASTS, note=True))
    reference = "cross-backend" if g.gaps else "float64"
    return CellResult(
        g.model, case.name, backend, run.device, path, verdict(findings, values.nothing or bool(seen.no_bits)),
        tuple(findings),
        values.outputs, snapshot=bits, snapshot_platform=snap_platform, tol=tol, policy=policy, reference=reference,
    )  # fmt: skip


def _weights_changed(g: Goldens, run: BackendRun) -> Finding | None:
    """The variables of a saved model whose values differ from its goldens' (judge/weights.py),
    or None: no kept weights to compare with, or none changed."""
    loaded = golden.part(run.feeds, g.model, "weights") if g.weights else {}
    changes = changed_weights(g.weights, loaded) if loaded else []
    if not changes:
        return None
    return Finding("weights", describe_weights(changes), fix=f"if the change is intended, regenerate with {g.regen}")


def _moved_bits(outputs: dict[str, OutputMetrics], platform: str, g: Goldens) -> Finding:
    """--strict-bits: the cell's bits moved against this platform's own snapshot."""
    moved = {k: m for k, m in outputs.items() if m.bit_identical is False}
    worst = max(moved, key=lambda k: moved[k].ulp_scaled or 0.0, default=None)
    size = f" ({worst}: {moved[worst].ulp_scaled:.3g} ulp@max)" if worst and moved[worst].ulp_scaled is not None else ""
    return Finding(
        "strict-bits",
        f"bits moved against the snapshot of this platform ({platform}){size}",
        fix="if the move is intended (an upgrade, a rebuilt image), record it with "
        + regen_command(g.spec, "--snapshots-only"),
    )


def _no_bits(g: Goldens, run: BackendRun, where: str, unreadable: str | None) -> Finding | None:
    """--strict-bits and no usable snapshot of this platform (a new CPU, a corrupt file): an ERROR, not a pass."""
    if where == "same":
        return None
    why = unreadable or f"no {run.backend} snapshot of this platform ({run.platform or '?'}) in {g.root / g.model}"
    record = g.finish.replace("`nox -s golden -- ", "`nox -s golden -- --snapshots-only ", 1)
    return Finding(
        "strict-bits", f"--strict-bits has nothing to compare bits with: {why}", fix=f"record it with {record}"
    )


def _values(g: Goldens, backend: str, case, path: str, runs: dict, tols, snap, policy: str) -> Comparison:
    """The cell's outputs against the float64 reference, or across backends where it has gaps.
    `tols`: the cell's tolerance, and a training cell's per array (or None)."""
    (tol, per_array), obtained = tols, runs[backend].cell(g.model, case.name, path)
    if g.gaps:
        others = {
            o: r.cell(g.model, case.name, (r.paths(g.model, case.name) or ["?"])[0])
            for o, r in runs.items()
            if o != backend
        }
        return cross_compare(obtained, others, snap, tol, g.gaps)
    return compare(
        obtained,
        golden.part(g.ref, case.name),
        tol,
        expected_dtype="float64" if policy == "float64" else "float32",
        snapshot=snap,
        classifier=case.classifier,
        pooled=case.training,
        per_array=per_array,
    )

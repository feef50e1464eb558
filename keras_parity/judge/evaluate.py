"""Judge every cell of a run against the goldens: the data flow's compare step."""

from __future__ import annotations

from pathlib import Path

from keras_parity import golden
from keras_parity.judge.compare import CellResult, Finding, compare
from keras_parity.judge.crossref import cross_compare
from keras_parity.models.registry import REGISTRY
from keras_parity.registry import usermodel
from keras_parity.run.launch import BackendRun


def _load_snapshot(model: str, run: BackendRun, root: Path):
    """(arrays, 'same'|'other-platform', platform) for this backend, or (None, 'missing', None)."""
    platform = run.meta.get("platform", "")
    path, where = golden.find_snapshot(model, platform, run.backend, golden.snapshot_identity(run.meta), root)
    if path is None:
        return None, where, None
    return golden.read_npz(path), where, path.parent.name


def _check_provenance(model: str, ref_meta: dict, run: BackendRun) -> tuple[list[str], list[str]]:
    """Weights/inputs must be the ones the goldens were made from; a config change is a note."""
    problems, notes = [], []
    got = run.meta["models"][model]
    for builder, b in got["builders"].items():
        want = ref_meta.get("builders", {}).get(builder, {})
        if want.get("weights_sha256") != b["weights_sha256"]:
            problems.append(
                f"weights of '{builder}' are not the ones the goldens were made from "
                f"(sha256 {b['weights_sha256']} != {want.get('weights_sha256')}); "
                "if the change is intended, regenerate with `nox -s golden`"
            )
        if want.get("config_sha256") not in (None, b["config_sha256"]):
            notes.append(f"model definition of '{builder}' changed since the goldens were made")
    for case, digest in got.get("inputs_sha256", {}).items():
        if ref_meta.get("inputs_sha256", {}).get(case) != digest:
            problems.append(
                f"inputs of case '{case}' changed since the goldens were made; regenerate with `nox -s golden`"
            )
    return problems, notes


KERAS_CASTS = (
    "Keras casts momentum and Adam's betas through float32 in its update rules "
    "(ops.cast of a Python float), so float64 optimizer steps carry their float32 rounding"
)


def _config_drift(model: str, mode: str, ref_meta: dict, run: BackendRun) -> list[str]:
    """Differences between the optimizer and loss configs Keras reports now and those recorded
    with the goldens: a default a release changed shows here even when the numbers hold."""
    got = run.meta["models"][model].get("training", {})
    want = ref_meta.get("training", {})
    notes = []
    for part in [mode, "loss"] if mode != "grad" else ["loss"]:
        a, b = want.get(part), got.get(part)
        if a is None or b is None or a == b:
            continue
        a, b = a.get("config", a), b.get("config", b)
        moved = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        notes.append(f"{part} config differs from the goldens': {'; '.join(moved) or 'class changed'}")
    return notes


def evaluate(
    runs: dict[str, BackendRun],
    models: list[str],
    root: Path = golden.GOLDEN,
    write_obtained: bool = True,
    policy: str = "float32",
    training: bool = True,
    precision: str = "float32",
) -> list[CellResult]:
    """Cells of `runs` against the goldens; a run under another dtype policy gets that policy's
    tolerance, and no snapshot (snapshots are float32)."""
    cells: list[CellResult] = []
    for model in models:
        spec, mroot = REGISTRY[model], usermodel.root_of(REGISTRY[model], root)
        try:
            ref = golden.read_npz(golden.reference_path(model, mroot))
            ref_meta = golden.read_json(golden.reference_path(model, mroot).with_suffix(".json"))
            golden_error = None
        except golden.GoldenError as exc:
            golden_error = str(exc)
            if spec.source and not golden.reference_path(model, mroot).exists():
                golden_error = (
                    f"no goldens for {model} in {mroot}; create them with "
                    f"`nox -s golden -- {usermodel.command_args(spec.source)}`"
                )
        gaps = None if golden_error else ref_meta.get("reference", {}).get("missing")
        for backend, run in runs.items():
            device = run.meta.get("device", "?")
            model_error = None if run.error else run.meta.get("errors", {}).get(model)
            problem = run.error or model_error or golden_error
            if problem is None and model not in run.meta.get("models", {}):
                problem = f"model '{model}' was not run"
            twin = run.meta.get("twin", False)
            if twin and spec.source:
                why = f"{backend}: twins exist for the built-in models only; {model} is your own"
                cells.append(CellResult(model, "*", backend, device, "native", "skipped", [Finding("twin", why)]))
                continue
            if twin and not golden_error and ("import_error" in run.meta or model in run.meta.get("no_twin", {})):
                why = run.error or run.meta["no_twin"][model]
                cells.append(CellResult(model, "*", backend, device, "native", "skipped", [Finding("twin", why)]))
                continue
            if problem:
                who = f"{backend} failed on {model}: " if model_error else ""
                cell = CellResult(model, "*", backend, device, "*", "error", [Finding("backend", who + problem)])
                if policy != "float32" and model_error:  # the policy, not the backend, failed
                    cell.status, cell.findings = (
                        "unsupported",
                        [Finding("policy", f"unsupported under {policy}: {problem}")],
                    )
                cell.policy = policy
                cells.append(cell)
                continue
            provenance, notes = _check_provenance(model, ref_meta, run)
            try:
                plain = policy == precision == "float32"
                snapshot, where, snap_platform = _load_snapshot(model, run, mroot) if plain else (None, "missing", None)
            except golden.GoldenError as exc:
                snapshot, where, snap_platform = None, "missing", None
                notes.append(str(exc))
            failed: dict = {}
            for case in spec.cases_for(policy, training):
                if twin and case.name not in run.meta["models"][model]["cases"]:
                    continue  # twins run the forward cases
                # a GPU variant (TF32) is judged by its precision; snapshots are float32 runs
                tol = spec.tolerance(backend, device, precision if precision != "float32" else policy, case)
                reference = golden.part(ref, case.name)
                for path in run.paths(model, case.name) or ["?"]:
                    cell = CellResult(model, case.name, backend, device, path)
                    obtained = run.cell(model, case.name, path)
                    snap = None if snapshot is None else golden.part(snapshot, case.name, path)
                    cell.policy = policy
                    expected = "float64" if policy == "float64" else "float32"
                    if gaps:
                        others = {
                            o: r.cell(model, case.name, (r.paths(model, case.name) or ["?"])[0])
                            for o, r in runs.items()
                            if o != backend
                        }
                        cross_compare(cell, obtained, others, snap, tol, gaps)
                    else:
                        compare(
                            cell,
                            obtained,
                            reference,
                            tol,
                            expected_dtype=expected,
                            snapshot=snap,
                            classifier=case.classifier,
                            pooled=case.training,
                        )
                    if snapshot is not None and where == "other-platform":
                        cell.snapshot, cell.snapshot_platform = "other-platform", snap_platform
                    for p in provenance:
                        cell.fail(p, "provenance")
                    for n in notes:
                        cell.note(n, "provenance")
                    if case.training:
                        for n in _config_drift(model, case.mode, ref_meta, run):
                            cell.note(n, "config")
                    if case.mode in ("sgd", "adam") and policy == "float64" and cell.status == "fail":
                        cell.note(KERAS_CASTS, "keras-casts")
                    if cell.status != "pass":
                        failed.update({f"{case.name}/{path}/{k}": v for k, v in obtained.items()})
                    cells.append(cell)
            obtained_file = golden.obtained_path(model, backend, mroot)
            if failed and write_obtained:
                golden.write_npz(obtained_file, failed)
            elif not failed:
                obtained_file.unlink(missing_ok=True)
    return cells

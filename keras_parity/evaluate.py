"""Judge every cell of a run against the goldens: the data flow's compare step."""

from __future__ import annotations

from pathlib import Path

from keras_parity import golden
from keras_parity.compare import CellResult, compare
from keras_parity.run import BackendRun
from models.registry import REGISTRY


def _load_snapshot(model: str, run: BackendRun, root: Path):
    """(arrays, 'same'|'other-platform') for this backend, or (None, 'missing')."""
    platform = run.meta.get("platform", "")
    path = golden.snapshot_path(model, platform, run.backend, root)
    if path.exists():
        return golden.read_npz(path), "same"
    others = sorted((root / model / "snapshots").glob(f"*/{run.backend}.npz"))
    if others:
        return golden.read_npz(others[0]), "other-platform"
    return None, "missing"


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


def evaluate(
    runs: dict[str, BackendRun],
    models: list[str],
    root: Path = golden.GOLDEN,
    write_obtained: bool = True,
    policy: str = "float32",
) -> list[CellResult]:
    """Cells of `runs` against the goldens; a run under another dtype policy gets that policy's
    tolerance, and no snapshot (snapshots are float32)."""
    cells: list[CellResult] = []
    for model in models:
        spec = REGISTRY[model]
        try:
            ref = golden.read_npz(golden.reference_path(model, root))
            ref_meta = golden.read_json(golden.reference_path(model, root).with_suffix(".json"))
            golden_error = None
        except golden.GoldenError as exc:
            golden_error = str(exc)
        for backend, run in runs.items():
            device = run.meta.get("device", "?")
            problem = run.error or golden_error or run.meta.get("errors", {}).get(model)
            if problem is None and model not in run.meta.get("models", {}):
                problem = f"model '{model}' was not run"
            if problem:
                who = "" if run.error or golden_error else f"{backend} failed on {model}: "
                cell = CellResult(model, "*", backend, device, "*", status="error", problems=[who + problem])
                if policy != "float32" and not (run.error or golden_error):  # the policy, not the backend, failed
                    cell.status, cell.problems = "unsupported", [f"unsupported under {policy}: {problem}"]
                cell.policy = policy
                cells.append(cell)
                continue
            provenance, notes = _check_provenance(model, ref_meta, run)
            try:
                snapshot, where = _load_snapshot(model, run, root) if policy == "float32" else (None, "missing")
            except golden.GoldenError as exc:
                snapshot, where = None, "missing"
                notes.append(str(exc))
            tol = spec.tolerance(backend, device, policy)
            failed: dict = {}
            for case in spec.cases:
                reference = {k.split("/", 1)[1]: v for k, v in ref.items() if k.startswith(case.name + "/")}
                for path in run.paths(model, case.name) or ["?"]:
                    cell = CellResult(model, case.name, backend, device, path)
                    obtained = run.cell(model, case.name, path)
                    snap = (
                        None
                        if snapshot is None
                        else {
                            k.split("/", 2)[2]: v for k, v in snapshot.items() if k.startswith(f"{case.name}/{path}/")
                        }
                    )
                    cell.policy = policy
                    expected = "float64" if policy == "float64" else "float32"
                    compare(
                        cell,
                        obtained,
                        reference,
                        tol,
                        expected_dtype=expected,
                        snapshot=snap,
                        classifier=case.classifier,
                    )
                    if snapshot is not None and where == "other-platform":
                        cell.snapshot = "other-platform"
                    for p in provenance:
                        cell.fail(p)
                    cell.problems += [f"note: {n}" for n in notes]
                    if cell.status != "pass":
                        failed.update({f"{case.name}/{path}/{k}": v for k, v in obtained.items()})
                    cells.append(cell)
            obtained_file = golden.obtained_path(model, backend, root)
            if failed and write_obtained:
                golden.write_npz(obtained_file, failed)
            elif not failed:
                obtained_file.unlink(missing_ok=True)
    return cells

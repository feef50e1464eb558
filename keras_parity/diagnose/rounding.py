"""Rounding or semantic: the backend run again in float64 decides what a float32 difference is.

If the backend's float64 run meets the float64 reference to FLOAT64_TOL, the model computes
the same math and the float32 difference is rounding. If the float64 run departs by as much
as the float32 tolerance, the math differs: semantic, named at the first layer where the
float64 run departs. In between, float64 was not honoured end to end (an output comes back
float32, or a layer departs from float64 by far more than float64 rounding, as whole models
do on JAX without x64); that layer is named and the cell cannot be classified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.diagnose import Diagnosed
from keras_parity.diagnose.localize import case_layers, profile
from keras_parity.judge.compare import Finding, pool
from keras_parity.judge.evaluate import KERAS_CASTS
from keras_parity.judge.numerics import rel_l2
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS, ModelSpec
from keras_parity.run import service
from keras_parity.run.service import RunPlan, Subset

# Far above what float64 rounding reaches through the deepest built-in model, far below float32's
# (docs/measurements.md, "Constants and the numbers behind them").
FLOAT64_TOL = 1e-12
# What each verdict adds to a failure's one line.
BRIEF = {
    "semantic": "semantic: the float64 run departs too (different math)",
    "rounding": "rounding: the float64 run meets the reference",
    "unclassified": "unclassified: float64 not honoured",
}


def verdict(cell, spec: ModelSpec, run, reference: dict, root: Path) -> tuple[str, float, str]:
    """(kind, float64 rel L2, explanation) for one cell of the model `spec` from its backend's float64 run."""
    obtained = run.cell(cell.model, cell.case, cell.path)
    if not obtained:
        return "unclassified", float("nan"), "the float64 run produced no output for this cell"
    narrow = sorted(k for k, v in obtained.items() if v.dtype != np.float64)
    ref = {k: reference[golden.key(cell.case, k)] for k in obtained}
    case = spec.case(cell.case)
    if case.training:  # judged per group, as compare() does
        obtained, ref = pool(obtained), pool(ref)
    rel = max(rel_l2(v, ref[k]) for k, v in obtained.items())
    if rel <= FLOAT64_TOL and not narrow:
        return "rounding", rel, f"the float64 run meets the reference (rel L2 {rel:.1e}): the difference is rounding"
    layers = case_layers(run, cell.model, cell.case)
    # a training cell's layers are its forward pass: they cannot say where a gradient departs
    rows = profile(spec, cell.model, cell.case, layers, root, run.feeds) if layers and not case.training else []
    downcast = next((n for n, v in layers.items() if v.dtype != np.float64), None)
    departs = next((r for r in rows if r.rel_l2 > FLOAT64_TOL), None)
    tol = cell.tol.rel_l2 if cell.tol else 0.0
    if rel > tol and not narrow:
        where = f" from layer '{departs.name}' ({departs.class_name})" if departs else ""
        return (
            "semantic",
            rel,
            f"the float64 run departs from the reference too (rel L2 {rel:.1e}){where}: different math",
        )
    what = (
        f"outputs {', '.join(narrow)} are not float64"
        if narrow
        else f"layer '{downcast}' outputs float32"
        if downcast
        else ""
    )
    if not what and departs:
        what = (
            f"layer '{departs.name}' ({departs.class_name}) departs from the float64 reference by rel L2 "
            f"{departs.rel_l2:.1e}, far above float64 rounding"
        )
    if not what and case.mode in ("sgd", "adam"):
        what = KERAS_CASTS
    return (
        "unclassified",
        rel,
        f"float64 is not honoured end to end ({what or 'somewhere'}); cannot tell rounding from semantic",
    )


def classify(plan: RunPlan, cells, out: Path, *, everything=False, log=print) -> list[Diagnosed]:
    """Run the plan's backends again in float64 (every layer captured, through the run service)
    and label cells rounding, semantic or unclassified: the failing ones, or with `everything` all."""
    registry, root = plan.registry, plan.golden_dir or golden.GOLDEN
    todo = [
        c
        for c in cells
        if c.case != "*" and c.policy == "float32" and (everything or c.values_failed) and c.backend in BACKENDS
    ]
    why = "unclassified: the model has no float64 reference to classify against"
    found = [
        Diagnosed(c.id, Finding("rounding", why, note=True), rounding="unclassified")
        for c in todo
        if c.reference != "float64"
    ]
    todo = [c for c in todo if c.reference == "float64"]
    if not todo:
        return found
    subset = Subset.of(todo)
    models = subset.models
    training = any(registry[c.model].case(c.case).training for c in todo)
    runs = service.run(
        plan, into=out, backends=subset.backends, models=models, log=log, layers=True, dtype="float64",
        training=training, twice=False,
    )  # fmt: skip
    refs = {m: golden.read_npz(golden.reference_path(m, usermodel.root_of(registry[m], root))) for m in models}
    for c in todo:
        run, rel = runs[c.backend], None
        if run.error or c.model not in run.models:
            kind, note = "unclassified", f"the float64 run failed: {run.failure(c.model)}"
        else:
            try:
                kind, rel, note = verdict(c, registry[c.model], run, refs[c.model], root)
            except Exception as exc:  # a layer the reference lacks, a missing graph
                kind, note = "unclassified", f"{type(exc).__name__}: {exc}"
        reported = c.status == "fail" or kind != "rounding"
        finding = None
        if reported:
            finding = Finding("rounding", f"{kind}: {note}", note=c.status == "pass", brief=BRIEF.get(kind, ""))
        found.append(Diagnosed(c.id, finding, rounding=kind, float64_rel_l2=rel))
    return found

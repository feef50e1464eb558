"""The float32 noise every built-in tolerance is derived from, measured (`keras-parity noise`).

Every built-in model runs on the three backends (forward and training path) and each cell's
error against the float64 reference is taken; the snapshots of every platform in golden/ add
theirs. Per model case and path (per array for the training path, where backprop through
BatchNormalization amplifies rounding by layer), the envelope, the largest error seen, is
written with its date to models/noise.json, which keras_parity/registry/noise.py reads.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.errors import InfraError, UsageError
from keras_parity.judge.compare import pool
from keras_parity.judge.numerics import array_error, array_scale, rel_l2, rms
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.noise import MARGIN, U32
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import service


def cell_noise(obtained: dict, reference: dict, training: bool) -> dict[str, tuple[float, float]]:
    """{what: (relative L2, largest error)} of one cell: per output, the largest error absolute;
    for a training case per array, both in units of the array's scale (numerics.array_scale).
    Floored at U32: no cell is quieter than float32's unit roundoff."""

    group_rms = {g: rms(v) for g, v in pool(reference).items()} if training else {}
    noise = {}
    for key, ref in reference.items():
        got = obtained.get(key)
        if got is None or got.shape != ref.shape or not np.all(np.isfinite(got)):
            continue
        if training:
            rel, worst = array_error(got, ref, array_scale(ref, group_rms[golden.head(key)]))
            noise[key] = (max(rel, U32), max(worst, U32))
        else:
            scale = float(np.max(np.abs(ref), initial=0.0))
            worst = float(np.max(np.abs(got.astype(np.float64) - ref), initial=0.0))
            noise[key] = (max(rel_l2(got, ref), U32), max(worst, U32 * scale))
    return noise


def group_noise(obtained: dict, reference: dict) -> dict[str, tuple[float, float]]:
    """A training cell's noise per pooled group (judge.compare.pool), the largest error in units
    of the group's RMS: what the cell's own tolerance is derived from."""

    if set(obtained) != set(reference) or any(obtained[k].shape != v.shape for k, v in reference.items()):
        return {}
    got, want = pool(obtained), pool(reference)
    noise = {g: array_error(got[g], w, rms(w)) for g, w in want.items()}
    return {g: (max(r, U32), max(a, U32)) for g, (r, a) in noise.items() if np.isfinite(r)}


def _widen(envelope: dict, cell: str, noise: dict, source: str, per_array: bool = False) -> None:
    """Grow the envelopes by one measurement: the cell's (its worst output or group), or with
    `per_array` each array's ('<cell>/<array>')."""
    if not per_array:
        noise = {"*": (max(r for r, _ in noise.values()), max(a for _, a in noise.values()))} if noise else {}
    for key, (rel, atol) in noise.items():
        name = f"{cell}/{key}" if per_array else cell
        old = envelope.get(name)
        envelope[name] = {
            "rel_l2": max(rel, old["rel_l2"]) if old else rel,
            "atol": max(atol, old["atol"]) if old else atol,
            "worst": source if not old or rel > old["rel_l2"] else old["worst"],
        }


def measure(out: Path, golden_root: Path | None = None, log=print, models: list[str] | None = None) -> dict:
    """Run the built-in models (or those named) on the three backends into `out`; return
    noise.json's content for them."""

    root = golden_root or golden.GOLDEN
    registry = builtin_registry()
    models = list(models or registry.builtin)
    plan = service.RunPlan(backends=list(BACKENDS), models=list(models), registry=registry)
    runs = service.run(plan, into=out, log=log)
    errors = {b: r.error for b, r in runs.items() if r.error}
    if errors:
        raise InfraError(f"backends failed, the noise is not measured: {errors}")
    envelope: dict = {}
    for model in models:
        ref = golden.read_npz(golden.reference_path(model, root))
        # (where, its arrays, the model's prefix in them: None in a snapshot, which holds one model)
        sources: list[tuple[str, dict, str | None]] = [(f"{b} here", r.arrays, model) for b, r in runs.items()]
        for snap in sorted((root / model / "snapshots").glob("*/*.npz")):
            sources.append((f"{snap.stem} on {snap.parent.name}", golden.read_npz(snap), None))
        for source, arrays, prefix in sources:
            for case in registry[model].cases:
                part = golden.part(arrays, *([prefix] if prefix else []), case.name)
                for path in golden.children(part):
                    got, want, cell = (
                        golden.part(part, path),
                        golden.part(ref, case.name),
                        golden.key(model, case.name, path),
                    )
                    if case.training:
                        _widen(envelope, cell, cell_noise(got, want, True), source, per_array=True)
                        _widen(envelope, cell, group_noise(got, want), source)
                    else:
                        _widen(envelope, cell, cell_noise(got, want, False), source)
        _layer_noise(envelope, model, runs, root)
    versions = {b: r.versions for b, r in runs.items()}
    return {
        "measured": datetime.date.today().isoformat(),
        "margin": MARGIN,
        "platform": next(iter(runs.values())).platform,
        "versions": versions,
        "cells": dict(sorted(envelope.items())),
    }


def _layer_noise(envelope: dict, model: str, runs: dict, root: Path) -> None:
    """Each layer's noise of the forward cases, '<model>/<case>/layers/<layer>': the error of the
    backends' layer sketches against the float64 reference's (golden/sketch.py; this CPU's
    runs only: snapshots keep no layers)."""

    path = golden.layers_path(model, root)
    if not path.exists():
        return
    ref = golden.read_npz(path)
    for backend, run in runs.items():
        for case in golden.children(ref):
            got, want = golden.part(run.sketches, model, case), golden.part(ref, case)
            noise = {k: (max(rel_l2(got[k], w), U32),) * 2 for k, w in want.items() if k in got}
            _widen(envelope, golden.key(model, case, "layers"), noise, f"{backend} here", per_array=True)


def merge(old: dict, new: dict, models: list[str]) -> dict:
    """`new`'s cells of `models` in place of `old`'s, every other cell of `old` kept as it was:
    a model whose cases changed is measured again without moving the other models' tolerances
    by a rounding. Measurements of other releases are not mixed."""
    if old.get("versions") != new["versions"]:
        raise UsageError(
            "models/noise.json was measured with other releases than these environments'; "
            "measure every model again with `nox -s noise`"
        )
    here = " here" if old.get("platform") == new["platform"] else f" on {new['platform']}"  # old's 'here' stays old's

    def ours(cell: str) -> bool:
        return cell.split("/", 1)[0] in models

    cells = {k: v for k, v in old.get("cells", {}).items() if not ours(k)}
    for cell, value in new["cells"].items():
        if ours(cell):
            worst = value["worst"]
            cells[cell] = {**value, "worst": worst.removesuffix(" here") + here if worst.endswith(" here") else worst}
    return {**old, "measured": new["measured"], "cells": dict(sorted(cells.items()))}

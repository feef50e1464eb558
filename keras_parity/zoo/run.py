"""The zoo as a pipeline: draw inputs → register each model as a user's builder → run every
backend once → the float64 reference from those runs (`golden`'s own writer) → judge → table.

Everything lands in <out>/zoo: the inputs, the references (golden/), the backends' raw
results, parity.json and parity.xml as `parity` writes them, and zoo.json and zoo.md with one
row per model. Nothing is written into the checkout's goldens.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from keras_parity import report
from keras_parity.errors import UsageError
from keras_parity.exitcodes import from_verdicts
from keras_parity.golden.regen import regenerate
from keras_parity.judge.compare import CellResult
from keras_parity.judge.evaluate import evaluate
from keras_parity.registry import usermodel
from keras_parity.registry.builtin import builtin_registry
from keras_parity.report.progress import Activity, activity
from keras_parity.run import service
from keras_parity.run.flags import RunFlags
from keras_parity.run.record import BackendRun, summary
from keras_parity.run.service import RunPlan
from keras_parity.zoo import models

# What CI runs of the zoo: the three kinds of model of the zoo's examples, a minute in all.
CI_SLICE = ("transformer_classifier", "sequence_model", "MobileNetV3Small")
# How Keras refuses an architecture on a backend ("NASNetMobile is not available with the torch
# backend at this time due to an outstanding bug").
KERAS_REFUSES = re.compile(r"\w+ is not available with the \w+ backend[^.]*")
SEED = usermodel.USER_SEED
# Under a float64 policy, an error above this cannot be float64 rounding (2^-53 = 1.1e-16 per
# operation, orders of magnitude less through the deepest network;
# docs/measurements.md, "Constants and the numbers behind them"): part of the model ran in float32.
BELOW_FLOAT64 = 1e-10


@dataclass
class Row:
    """One model of the zoo: per backend its worst error against float64 and its verdict."""

    model: str
    reference: str = "float64"  # or 'cross-backend' when the reference lacks a layer
    rel_l2: dict[str, float | None] = field(default_factory=dict)  # worst over paths and outputs
    status: dict[str, str] = field(default_factory=dict)  # worst over paths: pass | fail | error
    seconds: dict[str, float] = field(default_factory=dict)  # the runner's time on the model
    problems: list[str] = field(default_factory=list)
    float64: dict[str, float | None] = field(default_factory=dict)  # --float64: the same, run in float64

    @property
    def below_float64(self) -> list[str]:
        """The backends whose float64 run departs from the reference beyond float64 rounding."""
        return [b for b, e in self.float64.items() if e is not None and e > BELOW_FLOAT64]

    @property
    def verdict(self) -> str:
        """The worst of its backends'; a model the float64 reference cannot compute has none,
        which is what the zoo is there to show."""
        if self.reference != "float64":
            return "no reference"
        return _worst(*self.status.values()) if self.status else "error"


_ORDER = ("error", "fail", "unsupported", "skipped", "pass")


def _worst(*statuses: str) -> str:
    return min(statuses, key=_ORDER.index)


def sources(names: list[str], zoo_dir: Path) -> list[usermodel.Source]:
    """Each model as a user's builder, its inputs written beside the references."""
    (zoo_dir / "inputs").mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        path = zoo_dir / "inputs" / f"{name}.npz"
        np.savez(path, models.inputs(name, SEED))  # arr_0: the model's one input, by position
        target, golden = f"{models.__name__}:{name}", str((zoo_dir / "golden").absolute())
        scale = models.WEIGHT_SCALE.get(name)
        out.append(
            usermodel.Source(
                name, "builder", target, golden, str(path.absolute()), cwd=str(Path.cwd()), weight_scale=scale
            )
        )
    return out


def run_zoo(names: list[str], backends: list[str], out: Path, docker=False, float64=False, log=print, on_poll=None):
    """(rows, cells, runs) of the zoo's `names` on `backends`; with `float64`, each backend runs
    them again under a float64 policy, which should meet the reference to float64 rounding."""
    zoo_dir, golden_dir = out / "zoo", out / "zoo" / "golden"
    zoo = sources(names, zoo_dir)
    registry = builtin_registry().with_users({s.name: usermodel.spec(s) for s in zoo})
    registered = [s.name for s in zoo]
    plan = RunPlan(
        backends=backends, models=registered, registry=registry, docker=docker, golden_dir=golden_dir,
        flags=RunFlags(configs=True, training=False, predict_only=True),
    )  # fmt: skip
    runs = service.run(plan, into=zoo_dir / "raw", log=log, on_poll=on_poll)
    # The reference from these runs, by `golden`'s own writer; only its problems are shown.
    regenerate(runs, registered, registry, golden_dir, log=lambda line: log(line) if "[red]" in line else None)
    cells = evaluate(runs, registered, registry, golden_dir, training=False, strict=True)
    rows = rows_of(registered, cells, runs)
    if float64:
        with activity("float64 runs", total=len(backends) * len(registered), unit="models", log=log) as act:
            again = {b: _float64_run(plan, b, zoo_dir / "float64", log, act) for b in backends}
            act.update(note="")
        judged = evaluate(again, registered, registry, golden_dir, policy="float64", training=False)
        for row, other in zip(rows, rows_of(registered, judged, again)):
            row.float64 = other.rel_l2
            broken = [b for b, status in other.status.items() if status == "error"]  # not a departure: a crash
            row.problems += [f"float64 run: {p}" for p in other.problems if p.startswith(tuple(broken))]
    return rows, cells, runs


def _float64_run(plan: RunPlan, backend: str, out: Path, log, act: Activity) -> BackendRun:
    """One backend's float64 run of the plan's models, a process per model, one model at a time:
    JAX under float64 holds ConvNeXtXLarge in more than 22 GB, and a process the kernel kills for
    memory then loses that model only, recorded as its error."""
    asked = RunFlags(dtype="float64", training=False, predict_only=True)
    runs = {}
    for name in plan.models:
        act.update(note=f"{backend}: {name}")
        runs[name] = service.run(plan, into=out / name, backends=[backend], models=[name], flags=asked, log=log)[
            backend
        ]
        act.update(act.completed + 1)
    ran = [r for r in runs.values() if not r.error]
    if not ran:  # no environment, no import: the backend's error, as a run of all models gives it
        return next(iter(runs.values()))
    whole = replace(ran[0], arrays={}, layers={}, sketches={}, feeds={}, models={}, errors={}, wall=0.0)
    for name, run in runs.items():
        if run.error:
            whole.errors[name] = run.error
            continue
        whole.models.update(run.models)
        whole.errors.update(run.errors)
        whole.arrays.update(run.arrays)
    return whole


def rows_of(names: list[str], cells: list[CellResult], runs: dict[str, BackendRun]) -> list[Row]:
    rows = {n: Row(n) for n in names}
    for c in cells:
        row = rows[c.model]
        errors = [m.rel_l2 for m in c.outputs.values()]
        worst = max(errors, default=None)
        if worst is not None:
            row.rel_l2[c.backend] = max(worst, row.rel_l2.get(c.backend) or 0.0)
        row.status[c.backend] = _worst(c.status, row.status.get(c.backend, "pass"))
        if c.reference != "float64":
            row.reference = c.reference
        row.problems += [f"{c.backend}/{c.path}: {p}" for p in c.problems]
    for backend, run in runs.items():
        for name in names:
            made = run.models.get(name)
            if made is not None:
                rows[name].seconds[backend] = made.seconds or 0.0
                continue
            why = run.errors.get(name) or run.error or "the runner ended without it"
            refused = KERAS_REFUSES.search(why)
            if refused:  # a limitation of Keras (NASNetMobile on torch), not an error of the run
                why = f"Keras does not build it on {backend}: '{refused.group(0)}'"
            rows[name].status[backend] = "unsupported" if refused else "error"
            rows[name].problems = [p for p in rows[name].problems if not p.startswith(f"{backend}/")]
            rows[name].problems.append(f"{backend}: {why}")
    return list(rows.values())


def write(rows: list[Row], cells: list[CellResult], runs: dict[str, BackendRun], out: Path, backends) -> Path:
    """zoo.json, zoo.md, and parity.json/parity.xml as `parity` writes them; returns zoo.md."""
    zoo_dir = out / "zoo"
    meta = {b: summary(r) for b, r in runs.items()}
    report.write_json(cells, meta, zoo_dir / "parity.json")
    report.write_junit(cells, zoo_dir / "parity.xml")
    doc = {"backends": backends, "rows": [asdict(r) | {"verdict": r.verdict} for r in rows], "runs": meta}
    (zoo_dir / "zoo.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    md = zoo_dir / "zoo.md"
    md.write_text(markdown(rows, backends, runs))
    return md


def _err(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def markdown(rows: list[Row], backends: list[str], runs: dict[str, BackendRun]) -> str:
    f64 = backends if any(r.float64 for r in rows) else []
    head = ["model", *(f"{b} rel L2" for b in backends), *(f"{b} float64" for b in f64), "verdict"]
    head += [f"{b} s" for b in backends]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.model, *(_err(r.rel_l2.get(b)) for b in backends), *(_err(r.float64.get(b)) for b in f64)]
        cells += [r.verdict, *(f"{r.seconds[b]:.1f}" if b in r.seconds else "-" for b in backends)]
        lines.append("| " + " | ".join(cells) + " |")
    walls = ", ".join(f"{b} {run.wall:.0f} s" for b, run in runs.items())
    versions = ", ".join(f"{b}: keras {run.versions.get('keras', '?')}" for b, run in runs.items())
    return "\n".join([*lines, "", f"Wall time per backend process: {walls}. {versions}.", *_findings(rows), ""])


def _findings(rows: list[Row]) -> list[str]:
    """What the float64 runs say of Keras: a model that does not compute in float64 throughout."""
    return [
        f"{r.model} under float64 on {b}: relative L2 {r.float64[b]:.1e} against the reference, beyond float64 "
        f"rounding ({BELOW_FLOAT64:.0e}): part of it computes in float32"
        for r in rows
        for b in r.below_float64
    ]


def print_table(rows: list[Row], backends: list[str], console) -> None:
    from rich.table import Table

    f64 = backends if any(r.float64 for r in rows) else []
    t = Table(title="keras-parity zoo: worst relative L2 error against float64 per backend")
    for col in ("model", *backends, *(f"{b} f64" for b in f64), "verdict", "seconds"):
        t.add_column(col, justify="left" if col in ("model", "verdict") else "right")
    colour = {"pass": "green", "fail": "red", "error": "red"}
    for r in rows:
        seconds = "/".join(f"{r.seconds[b]:.0f}" if b in r.seconds else "-" for b in backends)
        verdict = f"[{colour.get(r.verdict, 'yellow')}]{r.verdict}[/]"
        errors = [_err(r.rel_l2.get(b)) for b in backends] + [_err(r.float64.get(b)) for b in f64]
        t.add_row(r.model, *errors, verdict, seconds)
    console.print(t)
    for r in rows:
        for p in r.problems:
            console.print(f"{r.model}: {p}", soft_wrap=True, markup=False)
    for line in _findings(rows):
        console.print(f"finding: {line}", soft_wrap=True, markup=False)


def pick(only: list[str] | None, ci: bool) -> list[str]:
    """The zoo's models to run: all, the CI slice, or those named (refused by name if unknown)."""
    if only:
        unknown = [n for n in only if n not in models.NAMES]
        if unknown:
            raise UsageError(f"no model {', '.join(unknown)} in the zoo; choose from {', '.join(models.NAMES)}")
        return list(dict.fromkeys(only))
    return list(CI_SLICE) if ci else list(models.NAMES)


def main(args, console) -> int:
    from keras_parity.registry.spec import BACKENDS
    from keras_parity.report.progress import BackendProgress

    names = pick(args.model, args.ci)
    backends = args.backend or list(BACKENDS)
    t0 = time.perf_counter()
    with BackendProgress(console, backends, names) as progress:
        rows, cells, runs = run_zoo(
            names, backends, args.out, args.docker, args.float64, log=console.print, on_poll=progress.update
        )
    print_table(rows, backends, console)
    md = write(rows, cells, runs, args.out, backends)
    console.print(f"zoo of {len(rows)} models in {time.perf_counter() - t0:.0f} s; table in {md}", soft_wrap=True)
    # a model the float64 reference cannot compute fails the zoo: covering them is its point
    return from_verdicts("fail" if r.verdict == "no reference" else r.verdict for r in rows)

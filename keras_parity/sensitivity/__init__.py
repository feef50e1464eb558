"""How much a pass proves: per layer, the smallest change of its output (or weights) the suite's
verdict catches on each backend, estimated from the measured noise and confirmed by planted runs.

1. A gain run (run/plant.py): every layer's output, then its weights, scaled by 1 + GAIN_DELTA,
   one at a time; how far each judged thing (the outputs, each layer's sketch) moves per unit
   of change is its gain.
2. The estimate: the least change taking one judged thing past its tolerance (ten times its
   measured noise: registry/spec.py), tolerance / gain, with MARGIN_UP on top.
3. Confirmation (real runs, judged by the suite's own judge, judge/evaluate.py): planted at the
   estimate, the cell must fail; at a third of it, pass. Where one does not, the bracket moves
   by three, up to ROUNDS times. A layer whose change can reach HIDDEN and still pass is named.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from keras_parity import golden
from keras_parity.judge.compare import CellStatus
from keras_parity.judge.evaluate import judge_backend
from keras_parity.judge.goldens import Goldens, read_goldens
from keras_parity.judge.numerics import rel_l2
from keras_parity.run import plant, service
from keras_parity.run.record import BackendRun

GAIN_DELTA = 1e-3  # large against float32 rounding (1e-7), small enough for every layer to act linearly
MARGIN_UP = 1.25  # the estimate is where the judged error meets the tolerance: a quarter above, it is past
ROUNDS = 3  # confirmation runs per backend: the first bracket, then two moves by a factor of three
HIDDEN = 1e-2  # a layer whose change of 1% (or more) passes is named as a blind spot
CEILING = 0.3  # the largest change planted


@dataclass(frozen=True)
class Threshold:
    """One layer's change (of its output or of its weights) on one backend, as measured."""

    model: str
    case: str
    layer: str
    target: str  # output | weights
    backend: str
    estimate: float | None  # from the gains and tolerances; None: nothing judged moves with it
    outputs_only: float | None  # what the outputs alone would catch (the layers unjudged)
    caught: float | None = None  # the least planted change seen failing the cell
    passed: float | None = None  # the largest planted change seen passing, below `caught`
    caught_by: tuple[str, ...] = ()  # the findings that failed the cell at `caught`

    @property
    def confirmed(self) -> bool:
        """Failed at `caught` and passed at a third of it (two planted runs)."""
        # (a third of it as float32 holds 1 + delta: the planted changes are rounded to its steps)
        return self.caught is not None and self.passed is not None and self.passed >= self.caught / 3.3

    @property
    def hidden(self) -> bool:
        return self.caught is None or self.caught > HIDDEN

    def as_json(self) -> dict:
        return dataclasses.asdict(self) | {"confirmed": self.confirmed, "hidden": self.hidden}


@dataclass(frozen=True)
class Target:
    """What is measured: one model's forward case, on the plan's backends."""

    model: str
    case: str


def forward_cases(spec) -> list[str]:
    """A model's cases whose outputs a plant moves: forward cases, the moving statistics left out."""
    return [c.name for c in spec.cases if not c.training and c.model_outputs and c.mode != "moving_stats"]


def measure(plan: service.RunPlan, targets: list[Target], into: Path, log=print) -> list[Threshold]:
    """Every layer of every target on every backend of the plan (see the module's docstring)."""
    goldens = {m: read_goldens(m, plan.golden_dir or golden.GOLDEN, plan.registry[m]) for m in plan.models}
    broken = [g for g in goldens.values() if g.error]
    if broken:
        from keras_parity.errors import UsageError

        raise UsageError(f"{broken[0].model}: {broken[0].error}")
    unplanted = [{"id": "base", "model": t.model, "case": t.case, "layer": "", "target": "output", "delta": 0.0}
                 for t in targets]  # fmt: skip
    scaled = [_gain_plant(t, target) for t in targets for target in plant.TARGETS]
    gains = _run(plan, into / "gain", unplanted + scaled, log)
    rows: list[Threshold] = []
    for run in gains.values():
        for t in targets:
            rows += _estimates(goldens[t.model], run, t)
    return _confirm(plan, goldens, rows, into, log)


def _gain_plant(t: Target, target: str) -> dict:
    return {
        "id": f"gain-{target}",
        "model": t.model,
        "case": t.case,
        "layer": "*",
        "target": target,
        "delta": GAIN_DELTA,
    }


def _run(plan: service.RunPlan, into: Path, plants: list[dict], log, backends=None) -> dict[str, BackendRun]:
    """One run of the plan's models (forward cases) with `plants` planted after them."""
    into.mkdir(parents=True, exist_ok=True)
    plan_file = into / "plants.json"
    plan_file.write_text(json.dumps({"plants": plants}))
    runs = service.run(plan, into=into, backends=backends, log=log, training=False, plants=str(plan_file.resolve()))
    failed = {b: r.error or next(iter(r.errors.values()), None) for b, r in runs.items()}
    failed = {b: why for b, why in failed.items() if why}
    if failed:
        from keras_parity.errors import InfraError

        backend, why = next(iter(failed.items()))
        raise InfraError(f"{backend}: the planted run failed: {why}")
    return runs


def _estimates(g: Goldens, run: BackendRun, t: Target) -> list[Threshold]:
    """Each layer's estimated threshold on `run`'s backend, for both targets, from the gain run."""
    case = g.spec.case(t.case)
    path = plant.cell_path(case, run.backend)
    base = _planted(run, "base", t, path)
    out_tol = g.spec.tolerance(run.backend, run.device, "float32", case, path).rel_l2
    layer_tols = g.spec.layer_tolerances(case, run.device, "float32")
    rows = []
    for target in plant.TARGETS:
        prefix = f"gain-{target}:"
        ids = sorted({k.split("/", 1)[0] for k in run.planted if k.startswith(prefix)}, key=_order(g, case, prefix))
        for pid in ids:
            moved = _planted(run, pid, t, path)
            if not moved[0]:
                continue
            delta = plant.applied(GAIN_DELTA)
            out_gain = max(rel_l2(moved[0][k], v) for k, v in base[0].items()) / delta
            gains = {k: rel_l2(moved[1][k], v) / delta for k, v in base[1].items() if k in moved[1] and k in layer_tols}
            outputs_only = out_tol / out_gain if out_gain > 0 else None
            judged = [layer_tols[k].rel_l2 / gain for k, gain in gains.items() if gain > 0]
            best = min([*judged, *([outputs_only] if outputs_only else [])], default=None)
            rows.append(
                Threshold(
                    t.model, t.case, pid[len(prefix) :], target, run.backend, best and best * MARGIN_UP, outputs_only
                )
            )
    return rows


def _order(g: Goldens, case, prefix: str):
    """Sort key of plant ids: their layers in graph order (as the goldens' graph lists them)."""
    graph_file = golden.graph_path(g.model, g.root)  # the goldens' graph (a user model's too)
    graph = golden.read_graph(graph_file).get(case.builder, {}) if graph_file.exists() else {}
    rank = {layer["name"]: i for i, layer in enumerate(graph.get("config", {}).get("layers", []))}
    return lambda pid: (rank.get(pid[len(prefix) :], len(rank)), pid)


def _planted(run: BackendRun, pid: str, t: Target, path: str) -> tuple[dict, dict]:
    """(outputs, sketches) of one plant in `run`."""
    outputs = golden.part(run.planted, pid, "arrays", t.model, t.case, path)
    return outputs, golden.part(run.planted, pid, "sketches", t.model, t.case)


def _confirm(plan: service.RunPlan, goldens: dict, rows: list[Threshold], into: Path, log) -> list[Threshold]:
    """Each estimate planted, and a third of it; the bracket moved by three where it does not hold."""
    asked = {i: _first_bracket(r) for i, r in enumerate(rows)}
    for round_ in range(ROUNDS):
        wanted = [(i, d) for i, deltas in asked.items() for d in deltas]
        plants = [_plant_of(rows[i], f"r{round_}-{n}", d) for n, (i, d) in enumerate(wanted)]
        if not plants:
            break
        log(f"confirming {len(plants)} planted changes (round {round_ + 1} of at most {ROUNDS})")
        runs = _run(plan, into / f"round{round_ + 1}", plants, log, sorted({r.backend for r in rows}))
        for p, (i, d) in zip(plants, wanted):
            failed, by = _verdict(goldens[rows[i].model], runs, p)
            rows[i] = _seen(rows[i], plant.applied(d), failed, by)
        asked = {i: more for i, r in enumerate(rows) if (more := _next(r))}
    return rows


def _plant_of(r: Threshold, pid: str, delta: float) -> dict:
    """The plant of one change of `r`'s layer, on `r`'s backend only."""
    return {"id": pid, "model": r.model, "case": r.case, "layer": r.layer, "target": r.target, "delta": delta,
            "backend": r.backend}  # fmt: skip


def _first_bracket(r: Threshold) -> list[float]:
    hi = min(_round_up(r.estimate), CEILING) if r.estimate else CEILING
    return [hi, hi / 3]


def _round_up(x: float) -> float:
    """`x` rounded up to two significant digits (a threshold a table can show as planted)."""
    e = math.floor(math.log10(x)) - 1
    return math.ceil(x / 10**e) * 10**e


def _seen(r: Threshold, delta: float, failed: bool, by: tuple[str, ...]) -> Threshold:
    if failed and (r.caught is None or delta < r.caught):
        return dataclasses.replace(r, caught=delta, caught_by=by)
    if not failed and (r.passed is None or delta > r.passed) and (r.caught is None or delta < r.caught):
        return dataclasses.replace(r, passed=delta)
    return r


def _next(r: Threshold) -> list[float]:
    """The next change to plant: three times the largest passing one, or a third of the least failing."""
    if r.confirmed:
        return []
    if r.caught is None:
        return [min(3 * r.passed, CEILING)] if r.passed is not None and r.passed < CEILING else []
    return [r.caught / 3]


def _verdict(g: Goldens, runs: dict[str, BackendRun], p: dict) -> tuple[bool, tuple[str, ...]]:
    """Whether the suite's judge fails the planted cell, and the kinds of the findings that fail it."""
    base = runs[p["backend"]]
    arrays = {**base.arrays, **golden.part(base.planted, p["id"], "arrays")}
    sketches = {**base.sketches, **golden.part(base.planted, p["id"], "sketches")}
    if not golden.part(base.planted, p["id"], "arrays"):
        return False, ("nothing planted",)
    mine = dataclasses.replace(base, arrays=arrays, sketches=sketches, planted={})
    path = plant.cell_path(g.spec.case(p["case"]), p["backend"])
    cells = judge_backend(g, p["backend"], {**runs, p["backend"]: mine})
    cell = next(c for c in cells if c.case == p["case"] and c.path == path)
    kinds = tuple(sorted({f.kind for f in cell.findings if not f.note}))
    return cell.status == CellStatus.FAIL, kinds

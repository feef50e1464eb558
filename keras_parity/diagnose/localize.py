"""Layer-wise localization: the first layer where a backend's numbers part from float64.

Every layer's output on the backend (runner --layers) is compared with the float64
reference's, walked from the graph the goldens were made from (golden/<model>/graph.json).
For layer l with error δ_l (relative L2 against the reference) and δ_in, the largest error
among its inputs, the rate R_l = (δ_l - δ_in) / (δ_in + ε), as the cross-backend testers
CRADLE and LEMON use it: rounding grows errors by small factors from layer to layer, a
different computation multiplies them at the layer that computes differently. The first
layer whose error jumps (R > R_JUMP) is named, even while its error is still below the case's
tolerance, with how many later layers jump too (a change spread over many layers); where no
layer jumps, the layer adding the most is named, and the profile is kept beside the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.diagnose import Diagnosed
from keras_parity.judge.compare import Finding
from keras_parity.judge.numerics import rel_l2
from keras_parity.reference import evaluate as reference_eval
from keras_parity.reference.graph import node_inputs
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS, ModelSpec
from keras_parity.run import service
from keras_parity.run.service import RunPlan, Subset
from keras_parity.run.weights import seeded_case

EPS = 1e-7  # about float32's unit roundoff (6e-8): an input error below it counts as none
# A jump: five times the largest rounding growth R of any layer output of the built-in
# forward cases on passing cells (`keras-parity growth` measures it;
# docs/measurements.md, "Constants and the numbers behind them").
R_JUMP = 10.0


@dataclass
class LayerError:
    name: str
    class_name: str
    rel_l2: float
    inputs_rel_l2: float
    rate: float
    note: str = ""


# The float64 layers of the last few built-in cases profiled: every failing backend of a case
# walks the same ones. A built-in model's name means one spec in every registry (with_users
# refuses the name to anything else), so the name is the key.
_REFERENCES: dict[tuple[str, str, Path], tuple[dict, dict[str, np.ndarray]]] = {}
_KEPT = 8


def _reference(spec: ModelSpec, model: str, case_name: str, root: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(graph, every layer's float64 output) for one case: the same for every backend."""
    key = (model, case_name, root)
    if key not in _REFERENCES:
        case = spec.case(case_name)
        graph = golden.read_json(golden.graph_path(model, root))[case.builder]
        weights, inputs = seeded_case(spec, case, graph)
        res = reference_eval(graph["config"], weights, inputs, training=case.mode != "infer", capture=True)
        while len(_REFERENCES) >= _KEPT:
            del _REFERENCES[next(iter(_REFERENCES))]
        _REFERENCES[key] = graph, res.layers
    return _REFERENCES[key]


def _user_reference(
    spec: ModelSpec, model: str, case_name: str, root: Path, feeds: dict
) -> tuple[dict, dict[str, np.ndarray]]:
    """A user model's: its inputs are the ones the runner wrote (`feeds`); its weights the
    goldens' own (a .keras file's, kept in weights.npz: a run whose weights changed is profiled
    against the model the goldens were made from), or drawn again from the seed."""
    graph = golden.read_json(golden.graph_path(model, root))[model]
    kept = golden.weights_path(model, root)
    if kept.exists():
        weights = golden.read_npz(kept)
    else:
        weights = usermodel.model_weights(model, graph, feeds, spec.weight_scale)
    inputs = usermodel.feed_part(feeds, model, f"inputs/{case_name}")
    return graph, reference_eval(graph["config"], weights, inputs, capture=True).layers


def profile(
    spec: ModelSpec,
    model: str,
    case_name: str,
    layers: dict[str, np.ndarray],
    root: Path = golden.GOLDEN,
    feeds: dict | None = None,
) -> list[LayerError]:
    """Per layer, in graph order: the error of `layers` (name -> backend output) vs float64.
    `spec` is the model's; a user model's weights and inputs come from the run (`feeds`)."""
    root = usermodel.root_of(spec, root)
    if spec.source:
        graph, ref = _user_reference(spec, model, case_name, root, feeds or {})
    else:
        graph, ref = _reference(spec, model, case_name, Path(root))
    errors: dict[str, float] = {}
    rows = []
    for layer in graph["config"]["layers"]:
        name, cls = layer["name"], layer["class_name"]
        if cls == "InputLayer":
            errors[name] = 0.0
            continue
        d_in = max((errors.get(n, 0.0) for n, _ in node_inputs(layer["inbound_nodes"])), default=0.0)
        got, want, note = layers.get(name), ref.get(name), ""
        if got is None or want is None:
            d, note = math.nan, "not captured"
        elif got.shape != want.shape:
            d, note = math.inf, f"shape {tuple(got.shape)} vs reference {tuple(want.shape)}"
        else:
            d = rel_l2(got, want)
        errors[name] = d if not math.isnan(d) else d_in
        rate = math.inf if math.isinf(d) else (d - d_in) / (d_in + EPS)
        rows.append(LayerError(name, cls, d, d_in, rate, note))
    return rows


def jumps(rows: list[LayerError]) -> list[LayerError]:
    """The layers whose own error jumps (R > R_JUMP) or whose output shape differs, in order."""
    return [r for r in rows if math.isinf(r.rel_l2) or r.rate > R_JUMP]


def first_jump(rows: list[LayerError]) -> LayerError | None:
    found = jumps(rows)
    return found[0] if found else None


def describe(rows: list[LayerError]) -> str:
    """The first divergent layer and how many follow; else the layer that adds the most."""
    found = jumps(rows)
    if not found:
        worst = max((r for r in rows if math.isfinite(r.rate)), key=lambda r: r.rate, default=None)
        if worst is None:
            return "no layer output could be compared"
        return (
            f"no layer's error jumps (R > {R_JUMP:g}): it grows gradually; the most is added by "
            f"'{worst.name}' ({worst.class_name}, R = {worst.rate:.3g}), output at rel L2 {rows[-1].rel_l2:.2e}"
        )
    hit, more = found[0], len(found) - 1
    extra = f"; {hit.note}" if hit.note else ""
    extra += f"; {more} later layer{'s' if more > 1 else ''} jump{'' if more > 1 else 's'} too" if more else ""
    return (
        f"first divergent layer '{hit.name}' ({hit.class_name}): rel L2 {hit.rel_l2:.2e} "
        f"from inputs at {hit.inputs_rel_l2:.2e} (R = {hit.rate:.3g}){extra}"
    )


def plot(rows: list[LayerError], hit: LayerError | None, title: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ys = [r.rel_l2 if math.isfinite(r.rel_l2) else np.nan for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, len(rows) * 0.05 + 4), 3.4))
    ax.plot(range(len(rows)), ys, marker="." if len(rows) > 40 else "o", linewidth=1)
    if hit is not None:
        i = rows.index(hit)
        ax.axvline(i, color="red", linestyle="--", linewidth=1)
        ax.annotate(hit.name, (i, ax.get_ylim()[1]), color="red", fontsize=8, ha="left", va="top")
    if len(rows) <= 40:
        ax.set_xticks(range(len(rows)), [r.name for r in rows], rotation=60, fontsize=7, ha="right")
    if any(math.isfinite(y) and y > 0 for y in ys):  # a log scale needs one positive value (NaN, 0: none)
        ax.set_yscale("log")
    ax.set_ylabel("rel. L2 vs float64")
    ax.set_xlabel("layer (graph order)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return out


def case_layers(run, model: str, case: str) -> dict[str, np.ndarray]:
    return golden.part(run.layers, model, case)


def localize_failures(plan: RunPlan, cells, out: Path, log=print) -> list[Diagnosed]:
    """Name the first divergent layer of every failing cell: one more run of the plan's failing
    backends and models, through the run service, with every layer's output written to `out`."""
    registry, root = plan.registry, plan.golden_dir or golden.GOLDEN
    failing = [c for c in cells if c.values_failed and c.case != "*" and c.policy == "float32"]
    why = "not localized: a native twin exposes no layer outputs; its port is named above"
    found = [Diagnosed(c.id, Finding("localize", why, note=True)) for c in failing if c.backend not in BACKENDS]
    failing = [c for c in failing if c.backend in BACKENDS]
    if not failing:
        return found
    subset = Subset.of(failing)
    training = any(registry[c.model].case(c.case).training for c in failing)
    runs = service.run(
        plan, into=out, backends=subset.backends, models=subset.models, log=log, layers=True, training=training,
        twice=False,
    )  # fmt: skip
    seen: dict[tuple, Finding] = {}
    for c in failing:
        key = (c.backend, c.model, c.case)
        if key not in seen:
            seen[key] = _localize(c, registry[c.model], runs[c.backend], root, out)
        found.append(Diagnosed(c.id, seen[key]))
    return found


def _localize(c, spec: ModelSpec, run, root: Path, out: Path) -> Finding:
    """One failing cell's first divergent layer, or why it has none."""
    if c.case in {x.name for x in spec.cases if x.mode == "moving_stats"}:
        return _not_localized("moving statistics are variables, not layer outputs")
    if c.reference != "float64":
        return _not_localized("the model has no float64 reference to walk layer by layer")
    if run.error or not run.layers:
        return _not_localized(run.error or "no layer outputs were written")
    try:
        return _first_divergence(c, spec, run, root, out)
    except Exception as exc:  # the reference lacks a layer, the graph is missing, ...
        return _not_localized(f"{type(exc).__name__}: {exc}")


def _first_divergence(c, spec: ModelSpec, run, root: Path, out: Path) -> Finding:
    rows = profile(spec, c.model, c.case, case_layers(run, c.model, c.case), root, run.feeds)
    # every failing cell's whole profile beside the report, whatever the finding says
    stem = out / f"{c.model}-{c.case}-{c.backend}"
    golden.write_json(stem.with_suffix(".json"), [asdict(r) for r in rows])
    hit = first_jump(rows)
    plot(rows, hit, f"{c.model}/{c.case} on {c.backend}", stem.with_suffix(".png"))
    if hit is None and spec.case(c.case).training:
        return Finding(
            "localize",
            "localized: no layer of the training-mode forward pass jumps: the difference is in what "
            "training adds (gradients, optimizer steps, moving statistics; worst weight above)",
            brief="no layer of the forward pass jumps: training adds the difference",
        )
    found = jumps(rows)
    brief = f"first divergent layer '{found[0].name}' ({found[0].class_name})" if found else "no layer jumps"
    return Finding("localize", f"localized: {describe(rows)}; profile: {stem}.png", brief=brief)


def _not_localized(why: str) -> Finding:
    return Finding("localize", f"not localized: {why}", note=True)

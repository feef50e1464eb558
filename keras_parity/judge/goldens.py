"""The goldens one model is judged against (golden/ holds their format), read once per model
with the exact command that makes them anew when they cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from keras_parity import golden
from keras_parity.registry import usermodel, usernoise
from keras_parity.registry.select import finish_command
from keras_parity.registry.spec import ModelSpec


@dataclass
class Goldens:
    """One model's goldens as the judge reads them, or why they cannot be read."""

    model: str
    spec: ModelSpec
    root: Path
    regen: str = "`nox -s golden`"  # how they are made again, for the fix of a provenance problem
    ref: dict = field(default_factory=dict)
    ref_json: dict = field(default_factory=dict)  # the reference's JSON: provenance, defaults, gaps
    layers: dict = field(default_factory=dict)  # the reference's layer sketches, '<case>/<layer>'
    layer_order: dict = field(default_factory=dict)  # builder -> its layers in graph order
    weights: dict = field(default_factory=dict)  # a .keras file's weights as the goldens were made from
    error: str | None = None
    finish: str = "`nox -s golden`"  # the exact command that makes this model's set anew
    notes: tuple[str, ...] = ()  # about the set, for every cell (a stopped regeneration)

    @property
    def gaps(self) -> list[str] | None:
        """Layers the float64 reference lacks (a user model judged across backends)."""
        return None if self.error else self.ref_json.get("reference", {}).get("missing")


def regen_command(spec: ModelSpec, *flags: str) -> str:
    """`nox -s golden` with the options that name a user's model (--model-file or --model, and
    --golden-dir), so the fix makes the goldens that were read; a built-in model needs none."""
    named = [*flags, usermodel.command_args(spec.source)] if spec.source else [*flags]
    return f"`nox -s golden{' -- ' + ' '.join(named) if named else ''}`"


def read_goldens(model: str, root: Path, spec: ModelSpec, regen: str | None = None) -> Goldens:
    """The goldens of `model`, whose spec is `spec` (a registry's, or a model of the pytest fixture's);
    `regen` says how they are made again (default: the `nox -s golden` line naming them)."""
    finish = finish_command(model, spec, root, regen or "`nox -s golden`")
    g = Goldens(model, spec, usermodel.root_of(spec, root), regen or regen_command(spec), finish=finish)
    path = golden.reference_path(model, g.root)
    half = golden.incomplete(g.root, model)
    if half:
        g.error = f"the goldens of {model} in {g.root} are half-written ({half}); finish them with {g.finish}"
        return g
    stopped = golden.unfinished(g.root, model)
    if stopped:
        g.notes = (f"a stopped `golden` left {stopped}: these are the previous goldens; finish with {g.finish}",)
    try:
        g.ref, g.ref_json = golden.read_npz(path), golden.read_reference_json(path.with_suffix(".json"))
        if spec.source and spec.source.rel_l2 is None and "noise" in g.ref_json:  # measured at `golden`
            g.spec = replace(spec, tol=usernoise.measured_tol(g.ref_json["noise"]))
        if golden.weights_path(model, g.root).exists():
            g.weights = golden.read_npz(golden.weights_path(model, g.root))
        graph_file = golden.graph_path(model, g.root)  # the pytest fixture's goldens have none
        graph = golden.read_graph(graph_file) if graph_file.exists() else {}
        if golden.layers_path(model, g.root).exists():
            g.layers = golden.read_npz(golden.layers_path(model, g.root))
            g.layer_order = {name: [layer["name"] for layer in b["config"]["layers"]] for name, b in graph.items()}
    except golden.GoldenError as exc:
        g.error = str(exc) if not path.exists() else f"{exc.problem}; make the set anew with {g.finish}"
        if spec.source and not path.exists():
            g.error = f"no goldens for {model} in {g.root}; create them with {g.regen}"
    return g

"""Planted changes, run in a backend process: one layer's output (or weights) scaled by 1 + delta.

`keras-parity sensitivity` (keras_parity/sensitivity/) asks a runner for a list of plants
(`--plants FILE`, JSON: {"plants": [{"id", "model", "case", "layer", "target", "delta"}]}; a
layer "*" stands for every layer of the model, each a plant of id '<id>:<layer>').
After its models, the runner builds each plant's model once, then for every plant sets the
seeded weights afresh, plants the change on the live layer (its `call` wrapped on the instance,
or its variables scaled), calls the model as the case's cell calls it and keeps the outputs and
layer sketches under '<id>/arrays/<model>/<case>/<path>/<output>' and '<id>/sketches/...':
the same keys a run has, so the suite's own judge reads a planted cell as it reads any other.
Nothing outside the process changes: Keras is patched in memory, never in its environment.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.registry import userload
from keras_parity.run.build import build_model
from keras_parity.run.flags import RunFlags
from keras_parity.run.modelio import case_paths, output_dict, set_weights
from keras_parity.run.probe import Probe
from keras_parity.run.weights import generate_inputs

TARGETS = ("output", "weights")


def cell_path(case, backend: str) -> str:
    """The path a planted cell stands for: the case's model call (a probe call is that call)."""
    return case_paths(case, backend)[-1]


def applied(delta: float) -> float:
    """The change a float32 model really gets for `delta`: (1 + delta) rounded to float32, less 1."""
    return float(np.float32(1.0 + delta)) - 1.0


@contextlib.contextmanager
def planted(model, layer_name: str, target: str, delta: float):
    """`layer_name`'s output (or every float weight of it) times 1 + delta while inside.
    Yields False when the layer has no such thing to change (a layer without weights); no
    layer ("") changes nothing: the unplanted call."""
    import keras

    if not layer_name:
        yield True
        return
    layer = model.get_layer(layer_name)
    if target == "weights":
        floats = [v for v in layer.weights if "float" in str(v.dtype)]
        for v in floats:
            v.assign(keras.ops.convert_to_numpy(v) * np.float32(1.0 + delta))
        yield bool(floats)  # the caller sets the weights afresh for the next plant
        return
    unplanted = layer.call

    def call(*args, **kwargs):
        out = unplanted(*args, **kwargs)
        scale = lambda t: t * (1.0 + delta) if "float" in str(t.dtype) else t  # noqa: E731
        return keras.tree.map_structure(scale, out)

    object.__setattr__(layer, "call", call)  # the instance's call: Keras looks it up at each call
    try:
        yield True
    finally:
        object.__delattr__(layer, "call")


def run(specs: dict, backend: str, asked: RunFlags, cache: Path | None, plan_file: Path) -> dict[str, np.ndarray]:
    """Every plant of `plan_file` for the models in `specs`: their outputs and sketches by key."""
    plants = json.loads(Path(plan_file).read_text())["plants"]
    by_cell: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for p in plants:
        if p["model"] in specs and p.get("backend", backend) == backend:
            by_cell[p["model"], p["case"]].append(p)
    out: dict[str, np.ndarray] = {}
    for (model_name, case_name), mine in by_cell.items():
        spec = specs[model_name]
        case = spec.case(case_name)
        out.update(_plant_case(spec, model_name, case, backend, asked, cache, mine))
    return out


def _plant_case(spec, name: str, case, backend: str, asked: RunFlags, cache, plants: list[dict]) -> dict:
    """One forward case's plants, its model built once and its weights set afresh for each."""
    from keras_parity.registry.builtin import model_module

    module = None if spec.source else model_module(spec.module)
    timings: dict[str, float] = defaultdict(float)
    model, weights, _ = build_model(spec, case, module, asked, timings, cache)
    inputs = userload.feed(spec.source, model) if spec.source else generate_inputs(case.inputs, spec.seed, case.builder)
    inputs = {k: v.astype(asked.dtype) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    probe, path, training = Probe.of(model), cell_path(case, backend), case.mode != "infer"
    sketched = spec.source is None and asked.dtype == "float32"
    out = {}
    for p in _expanded(plants, [n for n in probe.names if ":" not in n]):
        set_weights(model, weights)
        with planted(model, p["layer"], p["target"], p["delta"]) as changed:
            if not changed:
                continue  # nothing of that kind to change: no key, the caller reads it as such
            values = probe.call(model, inputs, training)
        outputs = output_dict(probe.model_outputs(values)) if probe.outputs is not None else {}
        _, sketches = probe.take(values, keep=False, sketched=sketched)
        out.update({golden.key(p["id"], "arrays", name, case.name, path, k): v for k, v in outputs.items()})
        out.update({golden.key(p["id"], "sketches", name, case.name, k): v for k, v in sketches.items()})
    return out


def _expanded(plants: list[dict], layers: list[str]) -> list[dict]:
    """The plants with a layer "*" made one per layer (a layer's extra outputs are the same layer)."""
    out: list[dict] = []
    for p in plants:
        out += [dict(p, id=f"{p['id']}:{n}", layer=n) for n in layers] if p["layer"] == "*" else [p]
    return out

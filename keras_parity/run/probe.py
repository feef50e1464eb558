"""Every layer's output of a forward case, from the call that gives the case its outputs.

A cell on the 'eager' or 'call' path is `model(x, training=...)`; the probe is the same graph
with every layer's output exposed, so one call of it gives the cell's outputs (the same layers
on the same inputs, op by op) and the layer sketches. A path that is not a model call
('predict') needs a call of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_parity.golden import sketch
from keras_parity.run.modelio import input_names, to_numpy

CALL_PATHS = ("eager", "call")  # the paths that are `model(x, training=...)`


@dataclass
class Probe:
    """A model exposing every layer's output (keyed as the float64 reference keys them: 'name',
    'name:1' for a layer's extra outputs); `outputs` are the positions of the model's own
    outputs among them (keras.tree.flatten order), None where one is not a layer's output."""

    model: Any
    names: list[str]
    outputs: list[int] | None

    @classmethod
    def of(cls, model) -> Probe:
        import keras

        names, tensors = [], []
        # A layer's first call in this graph: for a nested model, layer.output is its own inner
        # graph's output, which this graph's inputs do not reach.
        mine = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            node = next((n for n in layer._inbound_nodes if id(n) in mine), None)
            output = layer.output if node is None else node.output_tensors
            for j, t in enumerate(keras.tree.flatten(output)):
                names.append(layer.name if j == 0 else f"{layer.name}:{j}")
                tensors.append(t)
        where = {id(t): i for i, t in enumerate(tensors)}
        own = [where.get(id(t)) for t in keras.tree.flatten(model.output)]
        outputs = None if None in own else [i for i in own if i is not None]
        return cls(keras.Model(model.inputs, tensors), names, outputs)

    def call(self, model, inputs: dict, training: bool) -> list:
        """Every layer's output as backend tensors, for `inputs` by input name."""
        feed = [inputs[n] for n in input_names(model)]
        values = self.model(feed if len(feed) > 1 else feed[0], training=training)
        return list(values) if isinstance(values, (list, tuple)) else [values]  # one comes unwrapped

    def take(self, values: list, keep: bool, sketched: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(every layer's output if `keep`, their sketches if `sketched`) from a call's values,
        which are let go one by one as they are read: ResNet50's at 224x224 are 0.3 GB, and
        held as arrays besides, they were the runner's largest allocation."""
        layers, sketches = {}, {}
        for i, name in enumerate(self.names):
            array, values[i] = to_numpy(values[i]), None
            if keep:
                layers[name] = array
            if sketched and array.dtype.kind == "f":  # an integer output is not sketched
                sketches[name] = sketch.sketch(array)
        return layers, sketches

    def model_outputs(self, values: list) -> list:
        """The model's own outputs among a call's values (flatten order); `outputs` must be known."""
        assert self.outputs is not None
        return [values[i] for i in self.outputs]

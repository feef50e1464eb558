"""Evaluate a Keras 3 functional model from model.get_config() and its weights, in float64.

Nothing here imports Keras: the config is walked as plain JSON, so the reference cannot
inherit a bug from the backend it is meant to judge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from autograd.tracer import isbox

from keras_parity.reference.gaps import implemented, is_model, reference_gaps, refuse_gaps
from keras_parity.reference.layers import LAYERS, UnsupportedLayer
from keras_parity.reference.operators import evaluate_operator, is_operator
from keras_parity.reference.params import Params

__all__ = ["Result", "evaluate", "reference_gaps", "node_inputs"]


@dataclass
class Result:
    outputs: list[np.ndarray]
    # New values of variables a training-mode call assigns (BatchNormalization moving
    # statistics), keyed by variable path.
    updated: dict[str, np.ndarray] = field(default_factory=dict)
    # capture=True only: every layer's output by layer name. Extra outputs of a multi-output
    # layer are keyed "name:1", "name:2"; calls after a layer's first, "name@1", "name@1:1".
    layers: dict[str, np.ndarray] = field(default_factory=dict)


def _is_triple(x):
    return (
        isinstance(x, (list, tuple))
        and len(x) == 3
        and isinstance(x[0], str)
        and isinstance(x[1], int)
        and isinstance(x[2], int)
    )


def _triples(struct):
    """input_layers / output_layers: one triple, a list of them, or a dict (flattened in
    sorted key order, as keras.tree.flatten does)."""
    if _is_triple(struct):
        return [tuple(struct)]
    if isinstance(struct, dict):
        return [t for k in sorted(struct) for t in _triples(struct[k])]
    return [t for s in struct for t in _triples(s)]


def _is_tensor(obj):
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def node_inputs(obj):
    """All (layer, node) pairs a serialized args/kwargs structure refers to."""
    if _is_tensor(obj):
        name, node, _ = obj["config"]["keras_history"]
        return [(name, node)]
    if isinstance(obj, (list, tuple)):
        return [h for o in obj for h in node_inputs(o)]
    if isinstance(obj, dict):
        return [h for o in obj.values() for h in node_inputs(o)]
    return []


def _check_shape(arr, shape, what):
    if shape is None:
        return
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise ValueError(f"{what}: shape {arr.shape} does not match the config's {tuple(shape)}")


def _resolve(obj, values):
    """Replace every serialized keras tensor by its computed array."""
    if _is_tensor(obj):
        name, node, index = obj["config"]["keras_history"]
        arr = values[(name, node)][index]
        _check_shape(arr, obj["config"].get("shape"), f"output {index} of layer '{name}'")
        return arr
    if isinstance(obj, (list, tuple)):
        return [_resolve(o, values) for o in obj]
    if isinstance(obj, dict):
        return {k: _resolve(v, values) for k, v in obj.items()}
    return obj


# Call arguments a layer's adapter reads itself (from cfg["call_kwargs"]), by class name.
CALL_KWARGS = {
    "MultiHeadAttention": ("query", "value", "key", "use_causal_mask", "attention_mask"),
    "Attention": ("mask", "use_causal_mask", "return_attention_scores"),
}


def _none(value):
    """None, or a structure of Nones (a nested model's call records mask=[None, None])."""
    return value is None or (isinstance(value, (list, tuple)) and all(_none(v) for v in value))


def _call_kwargs(kwargs, name, accepted=()):
    for key, value in kwargs.items():
        if _none(value) or key == "training" or key in accepted:
            # The model-level training flag overrides a call's own, as Functional does
            # whenever the model is called with training=True/False.
            continue
        if key == "mask":
            raise UnsupportedLayer(f"float64 reference does not implement masks (layer '{name}')")
        raise UnsupportedLayer(f"float64 reference does not implement call argument {key}={value!r} (layer '{name}')")


def _f64(x):
    # Values autograd traces (training.py's gradients) are float64 already and stay boxed.
    return x if isbox(x) else np.asarray(x, dtype=np.float64)


def _check_dtype_policy(layer):
    policy = layer["config"].get("dtype")
    if isinstance(policy, dict) and "Quantized" in str(policy.get("class_name")):
        raise UnsupportedLayer(
            f"float64 reference does not implement quantized layers "
            f"(layer '{layer['name']}', {policy.get('class_name')})"
        )


def _feed(config, inputs):
    """Input arrays keyed by input layer name, as float64, checked against batch_shape."""
    names = [name for name, _, _ in _triples(config["input_layers"])]
    if isinstance(inputs, np.ndarray) or isbox(inputs):
        inputs = [inputs]
    if not isinstance(inputs, dict):
        if len(inputs) != len(names):
            raise ValueError(f"model takes {len(names)} inputs {names}, got {len(inputs)}")
        inputs = dict(zip(names, inputs))
    if set(inputs) != set(names):
        raise ValueError(f"model inputs are {names}, got {sorted(inputs)}")
    layers = {layer["name"]: layer for layer in config["layers"]}
    fed = {}
    for name in names:
        x = _f64(inputs[name])
        _check_shape(x, layers[name]["config"].get("batch_shape"), f"input '{name}'")
        fed[name] = x
    return fed


def evaluate(config, weights, inputs, *, training=False, capture=False):
    """Run the functional model described by `config` (model.get_config()) in float64.

    weights: variable path -> array. inputs: dict by input layer name, a list in
    input_layers order, or one array. training: the flag the model is called with.
    """
    if "layers" not in config:
        raise UnsupportedLayer("float64 reference evaluates functional models only (config has no 'layers')")
    state = {k: _f64(v) for k, v in weights.items()}
    used, updated, captured = set(), {}, {}
    if "input_layers" not in config:  # a Sequential model's own config: its layers in a row
        refuse_gaps(config, config.get("name", "sequential"))
        (x,) = _feed_sequential(config, inputs)
        values, outputs = {}, [_f64(_sequential(config, Params("", state, used, updated), [x], training))]
    else:
        values, outputs = _run(config, inputs, state, used, updated, training, capture)

    unused = sorted(set(state) - used - set(updated))
    if unused:
        # A weight nobody read means a layer read the wrong path or ignored a variable.
        raise ValueError(f"weights not used by any layer: {unused[:8]}{' ...' if len(unused) > 8 else ''}")

    if capture:
        for (name, i), outs in values.items():
            base = name if i == 0 else f"{name}@{i}"
            for j, out in enumerate(outs):
                captured[base if j == 0 else f"{base}:{j}"] = out
    return Result(outputs=outputs, updated=updated, layers=captured)


def _run(config, inputs, state, used, updated, training, capture, prefix=""):
    """Every node of a functional config, in order: (values by (layer, node), the outputs).
    prefix: the names of the models this one is nested in ('block/'), which its layers'
    weight paths start with (keras_parity/run/varpaths.py)."""
    values = {(name, 0): [x] for name, x in _feed(config, inputs).items()}
    unfed = [
        layer["name"] for layer in config["layers"] if not layer["inbound_nodes"] and (layer["name"], 0) not in values
    ]
    if unfed:
        raise ValueError(f"layers {unfed} have no inbound nodes and are not model inputs")
    # Keras counts a nested functional model's nodes from 1 in output_layers (its own node
    # linking inputs to outputs comes first there) and from 0 in the nodes' arguments.
    functional = {layer["name"] for layer in config["layers"] if layer["class_name"] == "Functional"}
    outputs = [(n, k - (n in functional), j) for n, k, j in _triples(config["output_layers"])]
    # Consumers left per (layer, node): without capture, a value is freed after its last
    # read, which keeps ResNet50 at a few live activations instead of all of them.
    readers = Counter(key for layer in config["layers"] for node in layer["inbound_nodes"] for key in node_inputs(node))
    out_keys = {(name, node) for name, node, _ in outputs}
    pending = [(layer, i) for layer in config["layers"] for i in range(len(layer["inbound_nodes"]))]
    while pending:
        # config["layers"] is already in topological order, so this is normally one pass;
        # the loop only guards against configs that are not.
        waiting = []
        for layer, i in pending:
            node = layer["inbound_nodes"][i]
            history = node_inputs(node)
            if any(key not in values for key in history):
                waiting.append((layer, i))
                continue
            values[(layer["name"], i)] = _call(layer, node, values, state, used, updated, training, prefix)
            for key in history:
                readers[key] -= 1
                if readers[key] == 0 and not capture and key not in out_keys:
                    del values[key]
        if len(waiting) == len(pending):
            stuck = sorted({layer["name"] for layer, _ in waiting})
            raise ValueError(f"cannot compute layers {stuck}: their inputs are never produced")
        pending = waiting
    return values, [values[(n, k)][j] for n, k, j in outputs]


def _feed_sequential(config, inputs):
    if isinstance(inputs, dict):
        inputs = list(inputs.values())
    xs = [inputs] if isinstance(inputs, np.ndarray) or isbox(inputs) else list(inputs)
    if len(xs) != 1:
        raise ValueError(f"a Sequential model takes one input, got {len(xs)}")
    return [_f64(xs[0])]


def _sequential(cfg, p, args, training):
    """A nested Sequential: its layers in order, each with its weights under
    '<sequential>/<layer>/' (keras_parity/run/varpaths.py); a model nested in it runs its own."""
    (x,) = args
    for inner in cfg["layers"]:
        if inner["class_name"] == "InputLayer":
            continue
        _check_dtype_policy(inner)
        name = inner["config"]["name"]
        if is_model(inner) and inner["class_name"] == "Sequential":
            x = _sequential(inner["config"], p.child(name), [x], training)
        elif is_model(inner):
            prefix = f"{p.child(name).layer}/"
            (x,) = _run(inner["config"], x, p.state, p.used, p.updated, training, capture=False, prefix=prefix)[1]
        else:
            x = LAYERS[inner["class_name"]]({**inner["config"], "name": name}, p.child(name), [x], training)
    return x


def _functional(layer, args, state, used, updated, training, prefix):
    """A nested functional model: its own graph on the arrays it is called with, its layers'
    weights under '<model>/<layer>/<leaf>' (keras_parity/run/varpaths.py)."""
    inputs = args[0] if len(args) == 1 else args
    inner = f"{prefix}{layer['name']}/"
    _, outputs = _run(layer["config"], inputs, state, used, updated, training, capture=False, prefix=inner)
    return outputs


def _call(layer, node, values, state, used, updated, training, prefix=""):
    name, class_name = layer["name"], layer["class_name"]
    if is_operator(layer):
        _call_kwargs(node.get("kwargs") or {}, name)
        return [_f64(evaluate_operator(layer, _resolve(node.get("args", []), values)))]
    if is_model(layer) and class_name == "Functional" and implemented(layer):
        _check_dtype_policy(layer)
        _call_kwargs(node.get("kwargs") or {}, name)
        return [
            _f64(o)
            for o in _functional(layer, _resolve(node.get("args", []), values), state, used, updated, training, prefix)
        ]
    fn = LAYERS.get(class_name) if implemented(layer) else None
    if class_name == "Sequential" and implemented(layer):
        fn = _sequential
    if is_model(layer) and not implemented(layer):  # name what inside it is missing
        refuse_gaps(layer["config"], name)
    if fn is None:
        raise UnsupportedLayer(
            f"float64 reference has no implementation of layer type '{class_name}' "
            f"(layer '{name}'); add one in keras_parity/reference/layers.py"
        )
    _check_dtype_policy(layer)
    accepted = CALL_KWARGS.get(class_name, ())
    _call_kwargs(node.get("kwargs") or {}, name, accepted)
    args = _resolve(node.get("args", []), values)
    config = {**layer["config"], "name": name}
    if accepted:
        config["call_kwargs"] = _resolve({k: v for k, v in (node.get("kwargs") or {}).items() if k in accepted}, values)
    try:
        out = fn(config, Params(prefix + name, state, used, updated), args, bool(training))
    except ValueError as e:  # UnsupportedLayer included: name the layer if the math could not
        if f"'{name}'" in str(e):
            raise
        raise type(e)(f"{e} (layer '{name}', {class_name})") from e
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [_f64(o) for o in outs]

"""How the suite calls a Keras model: the paths per backend, inputs by name, outputs by key.

Shared by the backend runner and the pytest fixture; it imports nothing of the suite's own
models, so the fixture works in any project.
"""

from __future__ import annotations

import numpy as np

from keras_parity import golden

# Cells per backend: 'predict' is the compiled path users run; 'eager' is model(x) where it
# is a different program (torch's predict is already the eager call).
PATHS = {"tensorflow": ("predict", "eager"), "jax": ("predict", "eager"), "torch": ("predict",)}


def case_paths(case, backend: str, naive: bool = False, predict_only: bool = False) -> tuple[str, ...]:
    """The paths a case runs on: gradients eager, optimizer steps through fit's compiled step,
    a training-mode forward as a call, inference on the backend's PATHS."""
    if case.mode == "grad":
        return ("eager",)
    if case.training:
        return ("fit",)
    if case.mode != "infer":
        return ("call",)
    if predict_only:
        return ("predict",)
    return ("eager",) if naive else PATHS[backend]


def to_numpy(x):
    import keras

    a = np.asarray(keras.ops.convert_to_numpy(x))
    # float16/bfloat16 outputs of mixed policies are stored exactly as float32 (npz has no bfloat16)
    return a.astype(np.float32) if str(a.dtype) in ("float16", "bfloat16") else a


def input_names(model) -> list[str]:
    """The model's inputs by their InputLayer's name (a Sequential's tensors have only
    generated names), in the order the model takes them."""
    return [t._keras_history.operation.name for t in model.inputs]


def output_dict(out) -> dict[str, np.ndarray]:
    """A model's outputs by key: 'output', then 'output:1', ... for a model of several (in
    keras.tree.flatten order, as the float64 reference lists them)."""
    import keras

    flat = keras.tree.flatten(out)
    return {golden.output(i): to_numpy(v) for i, v in enumerate(flat)}


def set_weights(model, weights) -> None:
    """model.set_weights, then what loading a saved model also does: a Normalization layer
    normalizes with statistics it derives from its weights in finalize_state(), which
    set_weights alone leaves at their build-time values (mean 0, variance 1)."""
    import keras

    model.set_weights(weights)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Normalization) and layer.built:
            layer.finalize_state()

"""A user's model in a backend process: loaded, rebuilt as a graph or in float64, and fed.

These import Keras, under the backend the runner chose; what can be told without Keras (the
files, the spec, the source) is keras_parity/registry/usermodel.py.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np

from keras_parity.registry.usermodel import DRAWN_BATCH, USER_SEED, Source, UserModelError, check_feed


def _import_custom(source: Source) -> None:
    if source.cwd not in sys.path:
        sys.path.insert(0, source.cwd)
    if source.custom_objects:
        module = source.custom_objects
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not f"{module}.".startswith(f"{exc.name}."):  # a module it imports is missing
                raise _raised_by(module, exc) from None
            raise UserModelError(
                f"custom objects module '{module}' is not found from {source.cwd} ({exc}); run from the folder "
                "that holds it or add that folder to PYTHONPATH"
            ) from None
        except Exception as exc:
            raise _raised_by(module, exc) from None


def _raised_by(module: str, exc: BaseException) -> UserModelError:
    """The error of a custom objects module whose own code raised on import, with its exception line."""
    line = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return UserModelError(f"custom objects module '{module}' raised on import ({line}); fix the module")


def load(source: Source):
    """The Keras model of `source`; a Sequential model comes back as its functional graph, the
    form the float64 reference walks (same layers, same variables)."""
    import keras

    _import_custom(source)
    if source.kind == "file":
        try:
            model = keras.saving.load_model(source.target, compile=False)
        except TypeError as exc:
            missing = re.search(r"[Cc]ould not (?:locate|deserialize) class '([^']+)'", str(exc))
            if missing:
                raise UserModelError(
                    f"{Path(source.target).name} uses class '{missing.group(1)}', which is not registered; pass "
                    "--custom-objects MODULE, a module that defines it with "
                    "@keras.saving.register_keras_serializable()"
                ) from None
            raise
    else:
        module_name, fn = source.target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserModelError(
                f"cannot import '{module_name}' for model {source.target} ({exc}); run from the folder that holds "
                "it or add that folder to PYTHONPATH"
            ) from None
        if not callable(getattr(module, fn, None)):
            raise UserModelError(f"'{module_name}' has no function '{fn}'; name a function that returns a model")
        model = getattr(module, fn)()
        if not isinstance(model, keras.Model):
            raise UserModelError(f"{source.target} returned {type(model).__name__}, not a keras.Model")
    return graph_model(model, source.name)


_FLOAT_POLICIES = ("float16", "bfloat16", "float32", "mixed_float16", "mixed_bfloat16")


def _float64_config(obj):
    """A serialized model with every floating dtype and dtype policy made float64."""
    if isinstance(obj, dict):
        if obj.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
            name = obj["config"].get("name")
            return {**obj, "config": {**obj["config"], "name": "float64" if name in _FLOAT_POLICIES else name}}
        return {k: _float64_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float64_config(v) for v in obj]
    return "float64" if obj in _FLOAT_POLICIES else obj


def in_float64(model):
    """`model` rebuilt with float64 layers and its weights cast: a saved file carries the dtype
    policy it was saved under (float32), which keras.config.set_floatx does not override, so
    its float64 run (the rounding diagnosis) would otherwise compute in float32."""
    import keras

    if all(getattr(v, "dtype", "float64") not in ("float16", "bfloat16", "float32") for v in model.weights):
        return model
    config = _float64_config(keras.saving.serialize_keras_object(model))
    try:
        clone = keras.saving.deserialize_keras_object(config)
        clone.set_weights(model.get_weights())  # assign casts to each variable's dtype
    except Exception as exc:
        raise UserModelError(
            f"{model.name}: rebuilding it in float64 failed ({type(exc).__name__}: {exc}); its float64 run "
            "cannot tell rounding from semantic"
        ) from None
    return clone


def graph_model(model, name: str):
    """`model` as a functional graph: a Sequential model's own (same layers, same variables)."""
    import keras

    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise UserModelError(
                f"{name}: a Sequential model without an Input has no graph; start it with keras.Input(shape)"
            )
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not hasattr(model, "_nodes_by_depth") or not model.inputs:
        raise UserModelError(
            f"{name} is a subclassed model with no graph; build it with the functional API or Sequential"
        )
    return model


def input_specs(model) -> list[tuple[str, tuple, str]]:
    from keras_parity.run.modelio import input_names

    return [(n, tuple(t.shape), str(t.dtype)) for n, t in zip(input_names(model), model.inputs)]


def feed(source: Source, model) -> dict[str, np.ndarray]:
    """The model's inputs by name: the user's .npz, checked against the model, or drawn from a
    fixed NumPy seed (floats U(-1, 1)) with a batch of DRAWN_BATCH."""
    specs = input_specs(model)
    if source.inputs is None:
        rng = np.random.default_rng(USER_SEED)
        out = {}
        for name, shape, dtype in specs:
            if not dtype.startswith(("float", "bfloat")) or any(s is None for s in shape[1:]):
                why = "is not floating point" if not dtype.startswith(("float", "bfloat")) else "has unknown dims"
                raise UserModelError(
                    f"input '{name}' of {source.name} {why} ({dtype}{shape}), so it cannot be drawn; pass --inputs"
                )
            out[name] = rng.uniform(-1.0, 1.0, size=(DRAWN_BATCH, *shape[1:])).astype(np.float32)
        return out
    with np.load(source.inputs, allow_pickle=False) as z:
        given = {k: z[k] for k in z.files}
    return check_feed(given, specs, Path(source.inputs).name, source.name)

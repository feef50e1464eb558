"""The Keras defaults a model leans on, as Keras reports them (backend processes).

Users write `BatchNormalization()` and `Adam()`; a release that changes a default (an epsilon,
a momentum, an initializer) changes their models without a word, and the built-in models, which
pass most arguments, would not notice. So every run records, for each Keras class a model uses
(its layers, the loss and the optimizers of the training path), the `get_config()` of an object
built with only its required arguments; the goldens keep the record (golden/<model>/reference.json)
and keras_parity/judge/defaults.py fails a cell whose recorded default moved.
"""

from __future__ import annotations

import inspect
import json

import keras

# Not defaults: 'name' carries a per-process counter (dense_7); 'dtype' is the policy the run
# set (a mixed_float16 run's layers default to it); the required arguments are the model's own.
NOT_DEFAULTS = ("name", "dtype")
CATEGORIES = (("layers", keras.layers.Layer), ("optimizers", keras.optimizers.Optimizer), ("losses", keras.losses.Loss))


def class_key(cls: type) -> str:
    """'keras.layers.Dense', 'keras.optimizers.Adam', 'keras.losses.MeanSquaredError'."""
    category = next(name for name, base in CATEGORIES if issubclass(cls, base))
    return f"keras.{category}.{cls.__name__}"


def _is_keras(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "keras" and any(issubclass(cls, base) for _, base in CATEGORIES)


def _required(cls: type[object]) -> list[str]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.default is inspect.Parameter.empty and p.kind in plain]


def default_config(cls: type, like=None) -> dict | None:
    """The config of `cls` built with only its required arguments, taken from `like` (the
    model's own instance); None when Keras cannot build it that way (a Lambda's function)."""
    required = _required(cls)
    try:
        given = {}
        if required:
            known = like.get_config() if like is not None else {}
            given = {k: known[k] if k in known else getattr(like, k) for k in required}
        config = cls(**given).get_config()
    except Exception:  # noqa: BLE001 - a class that cannot be built from its config alone
        return None
    kept = {k: v for k, v in config.items() if k not in NOT_DEFAULTS and k not in required}
    return json.loads(json.dumps(kept, default=repr))  # as the run's JSON will hold it


def layer_defaults(model) -> dict[str, dict]:
    """class key -> default config, for every Keras layer class in the model (nested ones too:
    LSTM's LSTMCell); the input layer has no defaults a user writes."""
    out = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        cls = type(layer)
        if not _is_keras(cls) or isinstance(layer, keras.layers.InputLayer) or class_key(cls) in out:
            continue
        config = default_config(cls, layer)
        if config is not None:
            out[class_key(cls)] = config
    return dict(sorted(out.items()))


def object_defaults(*objects) -> dict[str, dict]:
    """class key -> default config, for the given optimizers and losses (Keras classes only)."""
    out = {}
    for obj in objects:
        cls = type(obj)
        if _is_keras(cls):
            config = default_config(cls, obj)
            if config is not None:
                out[class_key(cls)] = config
    return out

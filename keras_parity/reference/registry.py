"""The table of Keras layer adapters, LAYERS, and what an adapter uses to register itself
and read its config. layers.py and the modules beside it register into it on import.

adapter(cfg, p, args, training) -> array or list of arrays. cfg is the layer's "config",
args the resolved positional call arguments, p(leaf) reads the weight "<layer>/<leaf>" and
p.update(leaf, value) records a new value for it (BatchNormalization moving statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras_parity.reference.ops import UnsupportedLayer

Adapter = Callable[..., Any]
LAYERS: dict[str, Adapter] = {}


def register(*class_names: str) -> Callable[[Adapter], Adapter]:
    """A decorator entering the adapter into LAYERS under each Keras class name."""

    def deco(fn: Adapter) -> Adapter:
        LAYERS.update(dict.fromkeys(class_names, fn))
        return fn

    return deco


def require(cfg, **allowed):
    """Raise unless each cfg[key] (when present) is one of the allowed values."""
    for key, ok in allowed.items():
        if key in cfg and cfg[key] not in ok:
            raise UnsupportedLayer(
                f"float64 reference does not implement {key}={cfg[key]!r} (layer "
                f"'{cfg.get('name')}'); supported: {list(ok)}"
            )


def single_input(args):
    """The one tensor a single-input layer is called with."""
    if len(args) != 1 or isinstance(args[0], (list, tuple)):
        raise ValueError(f"expected one input tensor, got {len(args)} arguments")
    return args[0]

"""Keras defaults that moved since the goldens: a failure of every cell that uses the class.

The runner records the default config of each Keras class a cell leans on (keras_parity/run/defaults.py):
its builder's layer classes and, on the training path, its loss and its optimizer. A release
that changes one (BatchNormalization's momentum, Adam's epsilon, Dense's initializer) changes
what users' `BatchNormalization()` and `Adam()` compute, whether or not the built-in models,
which pass most arguments, show it in their numbers.
"""

from __future__ import annotations

from keras_parity.judge.compare import Finding
from keras_parity.run.training import OPTIMIZER_CLASSES

NOT_RECORDED = "the goldens record no Keras defaults (made before they were kept); `nox -s golden` records them"


def cell_defaults(model_meta: dict, builder: str, mode: str) -> dict[str, dict] | None:
    """class key -> default config, for what one cell uses; None when nothing was recorded (a
    twin's run, goldens made before defaults were kept)."""
    layers = model_meta.get("builders", {}).get(builder, {}).get("defaults")
    if layers is None:
        return None
    used = dict(layers)
    if mode in ("grad", *OPTIMIZER_CLASSES):
        kept = model_meta.get("training", {}).get("defaults", {})
        wanted = [f"keras.optimizers.{OPTIMIZER_CLASSES[mode]}"] if mode in OPTIMIZER_CLASSES else []
        used.update({k: v for k, v in kept.items() if k in wanted or k.startswith("keras.losses.")})
    return used


def moved_defaults(want: dict[str, dict], got: dict[str, dict], regen: str = "`nox -s golden`") -> list[Finding]:
    """One failure per class whose defaults differ: each default (a nested one dotted:
    kernel_initializer.class_name) with its old and new value. An option only one release has
    (GlorotUniform's input_axes, new in Keras 3.15) is no default that moved: what the other
    release does without it is recorded nowhere."""
    findings = []
    for cls in sorted(set(want) & set(got)):
        old, new = _leaves(want[cls]), _leaves(got[cls])
        moved = [f"{k} {old[k]!r} -> {new[k]!r}" for k in sorted(set(old) & set(new)) if old[k] != new[k]]
        if moved:
            findings.append(
                Finding(
                    "default",
                    f"Keras default of {cls.rsplit('.', 1)[1]} changed since the goldens: {'; '.join(moved)}",
                    fix=f"if the new default is intended, accept it with {regen}",
                )
            )
    return findings


def _leaves(config: dict, prefix: str = "") -> dict[str, object]:
    """A nested config flattened: {'kernel_initializer.config.seed': None, ...}."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out

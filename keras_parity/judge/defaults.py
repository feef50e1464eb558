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
    """One failure per class whose defaults differ: each default with its old and new value."""
    findings = []
    for cls in sorted(set(want) & set(got)):
        old, new = want[cls], got[cls]
        moved = [f"{k} {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in _changed(old, new)]
        if moved:
            findings.append(
                Finding(
                    "default",
                    f"Keras default of {cls.rsplit('.', 1)[1]} changed since the goldens: {'; '.join(moved)}",
                    fix=f"if the new default is intended, accept it with {regen}",
                )
            )
    return findings


def _changed(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k, _ABSENT) != new.get(k, _ABSENT)]


_ABSENT = object()

"""The rounding growth R_JUMP is set above (`keras-parity growth`): every layer's growth rate on
the goldens' own models, which all pass, so whatever R they reach is rounding alone."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from keras_parity.diagnose.localize import LayerError, case_layers, profile
from keras_parity.errors import InfraError
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import service
from keras_parity.run.flags import RunFlags


def measure_rounding_growth(out: Path) -> list[LayerError]:
    """Every layer of every built-in forward case on the three backends, the largest R first."""
    registry = builtin_registry()
    models = list(registry.builtin)
    plan = service.RunPlan(
        backends=list(BACKENDS), models=models, registry=registry, flags=RunFlags(layers=True, training=False)
    )
    runs = service.run(plan, into=out, log=lambda *a: None)
    rows = []
    for run in runs.values():
        if run.error:
            raise InfraError(f"{run.backend}: {run.error}")
        for m in models:
            for case in registry[m].cases:
                if case.model_outputs:
                    found = profile(registry[m], m, case.name, case_layers(run, m, case.name))
                    rows += [replace(r, name=f"{run.backend} {m}/{case.name} {r.name}") for r in found]
    return sorted((r for r in rows if math.isfinite(r.rate)), key=lambda r: -r.rate)

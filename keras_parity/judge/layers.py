"""Every layer of a forward case against its own noise: a change deep in a network fails even
where it reaches the outputs diluted below their tolerance.

The runner sketches each layer's output (golden/sketch.py), `nox -s golden` keeps the float64
reference's sketches in golden/<model>/layers.npz, and `nox -s noise` measures each layer's
float32 noise; a layer passes within MARGIN times it (registry/spec.py, layer_tolerances).
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_parity.judge.compare import Finding
from keras_parity.judge.numerics import rel_l2
from keras_parity.registry.spec import Tol


def judge_layers(got: dict, want: dict, tols: dict[str, Tol], order: Sequence[str] = ()) -> Finding | None:
    """The first layer in graph `order` whose sketch is beyond its tolerance, with how many
    others are; None when all hold or nothing can be judged (no sketches: a twin, a user
    model, a GPU or a dtype policy). A layer's extra outputs ('name:1') follow the layer."""
    if not got or not tols:
        return None
    rank = {name: i for i, name in enumerate(order)}
    over = []
    for name in sorted(want, key=lambda k: (rank.get(k.split(":")[0], len(rank)), k)):
        ref = want[name]
        if name in got and name in tols and got[name].shape == ref.shape:
            rel = rel_l2(got[name], ref)
            if not rel <= tols[name].rel_l2:  # NaN fails too
                over.append((name, rel, tols[name]))
    if not over:
        return None
    (name, rel, tol), more = over[0], len(over) - 1
    others = f"; {more} later layer{'s' if more > 1 else ''} too" if more else ""
    return Finding(
        "layers",
        f"layer '{name}': relative L2 error {rel:.2e} > {tol.rel_l2:.1e}, its tolerance ({tol.why}){others}",
        brief=f"first layer out of its tolerance '{name}'",
    )

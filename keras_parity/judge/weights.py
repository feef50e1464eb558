"""Which variables of a saved model changed since its goldens were made, and by how much.

A .keras file's goldens keep its weights (golden/<model>/weights.npz); every run writes the
weights it loaded (its feeds). When the checksums differ, the cell does not say "FAIL 0.15x"
(an output that barely moved, caught only by the checksum) but names the variables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_parity.judge.numerics import l2_norm

SHOWN = 3  # variables named in the one line; the full list goes to the table


@dataclass(frozen=True)
class WeightChange:
    path: str
    rel_l2: float  # ||new - old|| / ||old|| (nan: not comparable, see `what`)
    max_abs: float
    what: str = ""  # "new", "gone", or a shape change; "" when the values moved

    def text(self) -> str:
        if self.what:
            return f"{self.path} ({self.what})"
        return f"{self.path} by rel L2 {self.rel_l2:.1e} (max abs {self.max_abs:.1e})"


def changed(kept: dict[str, np.ndarray], loaded: dict[str, np.ndarray]) -> list[WeightChange]:
    """The variables whose values differ between the goldens' weights and a run's, the largest
    relative change first."""
    out = [WeightChange(p, float("nan"), float("nan"), "new") for p in sorted(set(loaded) - set(kept))]
    out += [WeightChange(p, float("nan"), float("nan"), "gone") for p in sorted(set(kept) - set(loaded))]
    moved = []
    for path in sorted(set(kept) & set(loaded)):
        old, new = kept[path], loaded[path]
        if old.shape != new.shape:
            out.append(WeightChange(path, float("nan"), float("nan"), f"shape {old.shape} -> {new.shape}"))
            continue
        if np.array_equal(old, new, equal_nan=True):
            continue
        diff = np.abs(new.astype(np.float64) - old.astype(np.float64))
        norm = l2_norm(old)
        rel = l2_norm(diff) / norm if norm else float("inf")
        moved.append(WeightChange(path, rel, float(np.max(diff)), ""))
    return out + sorted(moved, key=lambda c: -c.rel_l2)


def describe(changes: list[WeightChange], shown: int = SHOWN) -> str:
    """'weights changed since the goldens: a by rel L2 1.0e-03 (max abs 2.0e-04), b ... (and 2 more)'."""
    head = ", ".join(c.text() for c in changes[:shown])
    more = f" (and {len(changes) - shown} more)" if len(changes) > shown else ""
    return f"weights changed since the goldens: {head}{more}"

"""What a failing (or any) cell is asked next: where it parts from float64 (localize.py),
rounding or semantic (rounding.py), whether its bits repeat (determinism.py), GPU variants (gpu.py).

A diagnosis never changes a cell: it returns what it found as Diagnosed values, and the
pipeline applies them (apply()), so the diagnoses are independent of each other's code.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_parity.judge.compare import CellId, CellResult, Finding


@dataclass(frozen=True)
class Diagnosed:
    """What one diagnosis says of one cell: a finding, and the report columns it fills."""

    cell: CellId
    finding: Finding | None = None
    determinism: str | None = None  # 'deterministic', 'unchecked' or how far repeated runs moved
    rounding: str | None = None  # 'rounding', 'semantic' or 'unclassified'
    float64_rel_l2: float | None = None  # the backend's float64 run against the reference


def apply(cells: list[CellResult], found: list[Diagnosed]) -> None:
    """Set what a diagnosis found on the cells it names, in the order found."""
    by_id = {c.id: c for c in cells}
    for d in found:
        cell = by_id[d.cell]
        for column in ("determinism", "rounding", "float64_rel_l2"):
            if getattr(d, column) is not None:
                setattr(cell, column, getattr(d, column))
        if d.finding is not None:
            cell.add(d.finding)

"""What a failing (or any) cell is asked next: where it parts from float64 (localize.py),
rounding or semantic (rounding.py), whether its bits repeat (determinism.py), GPU variants (gpu.py).

A diagnosis never changes a cell: it returns what it found as Diagnosed values, and the
pipeline builds new cells with them (apply()), so the diagnoses are independent of each other's code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from keras_parity.judge.compare import CellId, CellResult, CellStatus, Finding


@dataclass(frozen=True)
class Diagnosed:
    """What one diagnosis says of one cell: a finding, and the report columns it fills."""

    cell: CellId
    finding: Finding | None = None
    determinism: str | None = None  # 'deterministic', 'unchecked' or how far repeated runs moved
    rounding: str | None = None  # 'rounding', 'semantic' or 'unclassified'
    float64_rel_l2: float | None = None  # the backend's float64 run against the reference


COLUMNS = ("determinism", "rounding", "float64_rel_l2")  # the report columns a diagnosis fills


def apply(cells: list[CellResult], found: list[Diagnosed]) -> list[CellResult]:
    """New cells, each with what the diagnoses found of it: its findings after the judge's, in
    the order given, and the report columns they fill; a cell nothing was found of is kept."""
    by_id: dict[CellId, list[Diagnosed]] = {}
    for d in found:
        by_id.setdefault(d.cell, []).append(d)
    return [_with(c, by_id[c.id]) if c.id in by_id else c for c in cells]


def _with(cell: CellResult, found: list[Diagnosed]) -> CellResult:
    columns = {col: getattr(d, col) for d in found for col in COLUMNS if getattr(d, col) is not None}
    findings = [d.finding for d in found if d.finding is not None]
    failed = any(not f.note for f in findings) and cell.status != CellStatus.ERROR
    status = CellStatus.FAIL if failed else cell.status
    return replace(cell, status=status, findings=(*cell.findings, *findings), **columns)

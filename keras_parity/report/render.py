"""The parity report: the grid and the failures on the terminal (the full table with -v); the full
table as text, JSON and JUnit XML on disk; the grid as Markdown on GitHub Actions."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keras_parity.judge.compare import CellResult
from keras_parity.report import grid
from keras_parity.report.grid import STYLE


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def _ulps(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.3g}"


def _snapshot_text(cell: CellResult) -> str:
    """Against the snapshot of this platform key: bit-identical, or how far the bits moved in
    ULPs of each array's largest magnitude. Against another platform's: labelled as such,
    since that machine's kernels may round differently (not a change of this one)."""
    ulps = [m.ulp_scaled for m in cell.outputs.values() if m.ulp_scaled is not None]
    same = all(m.bit_identical for m in cell.outputs.values()) if cell.outputs else False
    if cell.snapshot == "identical":
        return "bit-identical"
    if cell.snapshot == "other-platform":
        return f"other-platform: {'bit-identical' if same else _ulps(max(ulps, default=0.0)) + ' ulp@max'}"
    if cell.snapshot == "changed" and ulps:
        return f"{_ulps(max(ulps))} ulp@max"
    return cell.snapshot


_COLUMNS = (
    ("model/case", "left"),
    ("backend", "left"),
    ("device", "left"),
    ("path", "left"),
    ("rel L2", "right"),
    ("max abs", "right"),
    ("max rel", "right"),
    ("tol (rel L2)", "right"),
    ("vs snapshot", "left"),
    ("top-5", "right"),
    ("float64 run", "left"),
    ("run twice", "left"),
    ("verdict", "left"),
)
# Columns filled only when asked for (--float64, --determinism, a classifier, a snapshot):
# left out when every cell of the run holds nothing there.
_OPTIONAL = {"top-5", "float64 run", "run twice", "vs snapshot"}


def _row(c: CellResult) -> list[str]:
    ms = list(c.outputs.values())
    worst = lambda attr: max((getattr(m, attr) for m in ms), default=None)
    top5 = [m.top5 for m in ms if m.top5 is not None]
    return [
        c.name,
        c.backend,
        c.device,
        c.label,
        _fmt(worst("rel_l2")),
        _fmt(worst("max_abs")),
        _fmt(worst("max_rel")),
        _fmt(c.tol.rel_l2 if c.tol else None),
        _snapshot_text(c),
        f"{min(top5):.2f}" if top5 else "-",
        f"{c.rounding} {_fmt(c.float64_rel_l2)}" if c.rounding else "-",
        ("same bits" if c.determinism == "deterministic" else c.determinism) if c.determinism else "-",
        f"[{STYLE[c.status]}]{c.status.upper()}[/]",
    ]


def table(cells: list[CellResult]) -> Table:
    """Every cell on a row of its own, every number the judge computed."""
    rows = [_row(c) for c in cells]
    keep = [i for i, (col, _) in enumerate(_COLUMNS) if col not in _OPTIONAL or any(r[i] != "-" for r in rows)]
    t = Table(title="keras-parity: float32 outputs vs the float64 reference", show_lines=False)
    for i in keep:
        t.add_column(_COLUMNS[i][0], justify=_COLUMNS[i][1], no_wrap=True)
    for r in rows:
        t.add_row(*(r[i] for i in keep))
    return t


def _snapshots_elsewhere(cells: list[CellResult]) -> str | None:
    elsewhere = sorted({c.snapshot_platform for c in cells if c.snapshot == "other-platform" and c.snapshot_platform})
    if not elsewhere:
        return None
    return (
        f"[dim]snapshots[/]: none recorded on this machine's platform; compared with {', '.join(elsewhere)} "
        "for information only (another CPU's kernels may round differently); record this one's with "
        "`nox -s golden -- --snapshots-only`"
    )


def _word(status: str) -> str:
    return status if status == "note" else status.upper()


def print_report(cells: list[CellResult], console: Console | None = None, verbose: bool = False) -> None:
    """The grid, the failures one line each, the notes; with `verbose`, the full per-cell table too."""
    console = console or Console()
    if verbose:
        console.print(table(cells))
    console.print(grid.grid(cells))
    # a line per failing model case and backend, then each note once (all of them: results/)
    for status, line in grid.failure_lines(cells):
        console.print(f"[{STYLE[status]}]{status.upper()}[/] {escape(line)}", highlight=False, soft_wrap=True)
    for line in grid.note_lines(cells):
        console.print(f"[dim]note[/] {escape(line)}", highlight=False, soft_wrap=True)
    if (text := _snapshots_elsewhere(cells)) is not None:
        console.print(text, soft_wrap=True)
    console.print(grid.totals(cells))


def write_table(cells: list[CellResult], path: Path) -> None:
    """The full per-cell table and every finding as plain text (what `-v` prints, kept on disk)."""
    out = Console(file=io.StringIO(), record=True, width=400, color_system=None, highlight=False)
    out.print(table(cells))
    for word, line in grid.finding_lines(cells):
        out.print(f"{_word(word)} {line}", markup=False, soft_wrap=True)
    out.print(grid.totals(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line.rstrip() for line in out.export_text().splitlines()) + "\n")


def write_step_summary(cells: list[CellResult], path: str | None = None) -> Path | None:
    """On GitHub Actions, the grid and the failures appended to the job summary as Markdown."""
    path = path if path is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as f:
        f.write(grid.markdown(cells))
    return Path(path)


def write_json(cells: list[CellResult], runs_meta: dict, path: Path, seeds: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"runs": runs_meta, "seeds": seeds or {}, "cells": [c.as_dict() for c in cells]}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")


def write_junit(cells: list[CellResult], path: Path) -> None:
    xml = JUnitXml(name="keras-parity")
    suites: dict[str, TestSuite] = {}
    for c in cells:
        suite = suites.setdefault(c.backend, TestSuite(f"parity.{c.backend}"))
        extra = "".join(f",{x}" for x in (c.policy if c.policy != "float32" else "", c.variant) if x)
        case = TestCase(f"{c.name}[{c.path}{extra}]", classname=f"parity.{c.backend}.{c.device}")
        msg = "; ".join(f.line for f in c.findings if not f.note)
        if c.status == "fail":
            case.result = [Failure(msg)]
        elif c.status == "error":
            case.result = [Error(msg)]
        elif c.status in ("unsupported", "skipped"):
            case.result = [Skipped(msg)]
        suite.add_testcase(case)
    for suite in suites.values():
        xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)

"""The parity report: one rich table on the terminal, JSON and JUnit XML on disk."""

from __future__ import annotations

import json
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keras_parity.judge.compare import CellResult

_STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "unsupported": "yellow", "skipped": "yellow"}


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


def table(cells: list[CellResult]) -> Table:
    t = Table(title="keras-parity: float32 outputs vs the float64 reference", show_lines=False)
    for col, just in (
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
    ):
        t.add_column(col, justify=just, no_wrap=True)
    for c in cells:
        ms = list(c.outputs.values())
        worst = lambda attr, ms=ms: max((getattr(m, attr) for m in ms), default=None)
        top5 = [m.top5 for m in ms if m.top5 is not None]
        t.add_row(
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
            f"[{_STYLE[c.status]}]{c.status.upper()}[/]",
        )
    return t


def print_report(cells: list[CellResult], console: Console | None = None) -> None:
    console = console or Console()
    console.print(table(cells))
    for c in cells:
        where = escape(f"{c.name} ({c.backend}/{c.device}/{c.label})")
        for f in c.findings:
            if f.note:
                console.print(f"[dim]note[/] {where}: {escape(f.line)}", highlight=False, soft_wrap=True)
            else:
                console.print(
                    f"[{_STYLE[c.status]}]{c.status.upper()}[/] {where}: {escape(f.line)}",
                    highlight=False,
                    soft_wrap=True,
                )
    elsewhere = sorted({c.snapshot_platform for c in cells if c.snapshot == "other-platform" and c.snapshot_platform})
    if elsewhere:
        console.print(
            f"[dim]snapshots[/]: none recorded on this machine's platform; compared with {', '.join(elsewhere)} "
            "for information only (another CPU's kernels may round differently); record this one's with "
            "`nox -s golden -- --snapshots-only`",
            soft_wrap=True,
        )
    n = {s: sum(c.status == s for c in cells) for s in _STYLE}
    extra = "".join(f", {n[s]} {s}" for s in ("unsupported", "skipped") if n[s])
    console.print(f"{len(cells)} cells: {n['pass']} passed, {n['fail']} failed, {n['error']} errors{extra}")


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

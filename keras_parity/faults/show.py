"""What `keras-parity faults` shows: a line per fault as it ends, the table, the summary, faults.json."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path

from keras_parity.faults import CleanRun, FaultResult
from keras_parity.golden import files


@dataclass(frozen=True)
class Summary:
    exercised: int  # faults that touched some cell
    caught: int
    recall: float
    false_alarms: int  # cells not passing over every clean run
    clean_cells: int  # cells judged over the clean runs
    beyond_bits: int  # fault runs' cells failing with their bits unchanged (a changed default named)
    controls: int  # rounding controls that touched something
    controls_passed: int  # ... and passed every cell they touched
    localized: int
    localized_right: int
    localization: float | None
    seconds: float

    @property
    def lines(self) -> list[str]:
        loc = f"{self.localization:.0%}" if self.localization is not None else "-"
        return [
            f"recall: {self.caught}/{self.exercised} faults caught on every cell they touched "
            f"({f'{self.recall:.0%}' if self.exercised else '-'})",
            f"false alarms: {self.false_alarms} cells not passing over {self.clean_cells} clean cells "
            "(the clean runs', and the rounding controls' touched cells)",
            f"rounding controls: {self.controls_passed}/{self.controls} passed every cell they touched",
            f"beyond the bits: {self.beyond_bits} cells of fault runs failed with their bits unchanged",
            f"localization: {self.localized_right}/{self.localized} first divergent layers right ({loc})",
            f"time: {self.seconds / 60:.1f} min",
        ]


def summary(results: list[FaultResult], runs: list[CleanRun], seconds: float) -> Summary:
    exercised = [r for r in results if r.touched and not r.fault.rounding]
    caught = sum(r.caught for r in exercised)
    localized = [c for r in results if not r.fault.rounding for c in r.localizations]
    right = sum(c.localized == c.first_moved for c in localized)
    controls = [r for r in results if r.fault.rounding]
    alarms = sum(len(r.not_passing) for r in runs) + sum(len(r.cried_wolf) for r in controls)
    cells = sum(r.judged for r in runs) + sum(len(r.touched) for r in controls)
    beyond = sum(len(r.beyond_bits) for r in results)
    touching = [r for r in controls if r.touched]
    return Summary(
        len(exercised), caught, caught / len(exercised) if exercised else 0.0, alarms, cells, beyond,
        len(touching), sum(not r.cried_wolf for r in touching),
        len(localized), right, right / len(localized) if localized else None, seconds,
    )  # fmt: skip


def progress_line(r: FaultResult, i: int, n: int) -> str:
    state = "caught" if r.caught else ("not exercised" if not r.touched else f"ESCAPED on {len(r.escaped)} cells")
    if r.fault.rounding:  # a control: passing is right
        state = f"FAILED {len(r.cried_wolf)} cells (a false alarm)" if r.cried_wolf else "passed, as rounding should"
    state = f"CRASHED on {len(r.crashed)} cells: {r.crashed[0].error}" if r.crashed else state
    return f"[{i}/{n}] {r.fault.name}: {len(r.touched)} cells touched, {state}, {r.seconds:.0f} s"


def table(results: list[FaultResult], s: Summary, console) -> None:
    from rich.table import Table

    t = Table(title="the fault catalogue through `parity --patch`")
    for col in ("fault", "kind", "touched", "failed", "escaped", "localized right", "s"):
        t.add_column(col, justify="left" if col in ("fault", "kind") else "right")
    for r in results:
        loc = r.localizations
        t.add_row(
            r.fault.name, r.fault.kind, str(len(r.touched)), str(len(r.touched) - len(r.escaped)),
            "-" if r.fault.rounding else f"[red]{len(r.escaped)}[/]" if r.escaped else "0",
            f"{sum(c.localized == c.first_moved for c in loc)}/{len(loc)}" if loc else "-", f"{r.seconds:.0f}",
        )  # fmt: skip
    console.print(t)
    for r in results:
        for c in r.cried_wolf:
            console.print(f"[red]false alarm[/] {r.fault.name} (rounding): {c.model}/{c.case} on {c.backend} failed: "
                          f"{c.problem}", soft_wrap=True)  # fmt: skip
        for c in [] if r.fault.rounding else r.escaped:
            console.print(f"[red]escaped[/] {r.fault.name}: {c.model}/{c.case} on {c.backend} passed at "
                          f"{c.ratio or 0:.2f}x its tolerance", soft_wrap=True)  # fmt: skip
        for c in r.localizations:
            if c.localized != c.first_moved:
                console.print(f"[yellow]mislocalized[/] {r.fault.name}: {c.model}/{c.case} on {c.backend} named "
                              f"'{c.localized}', the change starts at '{c.first_moved}'", soft_wrap=True)  # fmt: skip
        for c in r.crashed[:1]:
            console.print(
                f"[red]crashed[/] {r.fault.name}: {c.model}/{c.case} on {c.backend}: {c.error}", soft_wrap=True
            )
        for c in r.beyond_bits:
            console.print(f"beyond the bits {r.fault.name}: {c.model}/{c.case} on {c.backend}: {c.problem}",
                          soft_wrap=True)  # fmt: skip
        if not r.touched:
            console.print(f"[yellow]not exercised[/] {r.fault.name}: no cell of these models changed", soft_wrap=True)
    for line in s.lines:
        console.print(line)


def write_json(results: list[FaultResult], runs: list[CleanRun], s: Summary, out: Path) -> Path:
    data = {
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "summary": dataclasses.asdict(s),
        "clean_runs": [dataclasses.asdict(r) for r in runs],
        "faults": [
            {"name": r.fault.name, "kind": r.fault.kind, "modeled_on": r.fault.modeled_on, "seconds": r.seconds,
             "rounding": r.fault.rounding, "caught": r.caught, "cells": [dataclasses.asdict(c) for c in r.cells]}
            for r in results
        ],
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(out, data)
    return out

"""The one-screen answer to "is anything wrong, and where": a grid of model cases down and
backends across, each cell the error as a multiple of its tolerance, then the failures one line
each. The same summary as Markdown for a GitHub Actions job summary."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from keras_parity.judge.compare import CellResult, Finding
from keras_parity.registry.spec import BACKENDS
from keras_parity.twins import MODULES as TWINS

STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "unsupported": "yellow", "skipped": "yellow"}
# Which of a backend's cells the grid shows when its paths disagree: the worst verdict, then the largest error.
_SEVERITY = {"pass": 0, "skipped": 1, "unsupported": 2, "fail": 3, "error": 4}
_WORD = {"fail": "FAIL", "error": "ERROR", "unsupported": "n/a", "skipped": "skip"}
TITLE = "keras-parity: error / tolerance (rel L2)"
# Short: a caption wraps at the grid's width. The tolerances themselves are multiples of each
# case's measured float32 noise (models/noise.json), so 1.00x is that many times the noise.
CAPTION = "worst path of each backend; - not run"


def multiple(cell: CellResult) -> float | None:
    """The cell's worst output error in units of its tolerance (1.0 is the limit)."""
    if not cell.tol or not cell.outputs or cell.tol.rel_l2 <= 0:
        return None
    return max(m.rel_l2 / cell.tol.rel_l2 for m in cell.outputs.values())


def fmt_multiple(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return "NaN"
    if x < 0.01:
        return "<0.01x"
    return f"{x:.2f}x" if x < 10 else f"{x:.0f}x" if x < 1000 else f"{x:.0e}x"


def _row_label(cell: CellResult) -> str:
    """model/case, with what the cell ran under besides its path (policy, GPU variant, reference)."""
    return cell.name + cell.conditions


def _columns(cells: list[CellResult]) -> list[str]:
    """The backends, then the twins, in the order the suite declares them; anything else after."""
    present = list(dict.fromkeys(c.backend for c in cells))
    order = [*BACKENDS, *TWINS]
    return sorted(present, key=lambda b: (order.index(b) if b in order else len(order), present.index(b)))


@dataclass
class Shown:
    """One grid cell: the worst of a backend's cells for one row."""

    status: str
    text: str


def _worst(cells: list[CellResult]) -> Shown:
    def key(c: CellResult):
        m = multiple(c)
        return (_SEVERITY[c.status], -1.0 if m is None else (math.inf if math.isnan(m) else m))

    c = max(cells, key=key)
    m = multiple(c)
    number = fmt_multiple(m) if m is not None else ""
    if c.status == "pass":
        return Shown("pass", number or "pass")
    if c.status == "fail" and any(f.kind == "weights" and not f.note for f in c.findings):
        return Shown("fail", "weights changed")  # not a backend's error: the model is another one
    word = _WORD[c.status]
    return Shown(c.status, f"{word} {number}" if number and c.status == "fail" else word)


def layout(cells: list[CellResult]) -> tuple[list[str], list[tuple[str, dict[str, Shown]]]]:
    """The grid's columns and rows, each row its label and the shown cell per backend."""
    cols = _columns(cells)
    groups: dict[str, dict[str, list[CellResult]]] = {}
    for c in cells:
        groups.setdefault(_row_label(c), {}).setdefault(c.backend, []).append(c)
    return cols, [(label, {b: _worst(cs) for b, cs in by.items()}) for label, by in groups.items()]


def grid(cells: list[CellResult]) -> Table:
    cols, rows = layout(cells)
    t = Table(title=TITLE, caption=CAPTION, caption_justify="left")
    t.add_column("model/case", no_wrap=True)
    for b in cols:
        t.add_column(b, justify="right", no_wrap=True)
    for label, shown in rows:
        t.add_row(
            escape(label),
            *(f"[{STYLE[s.status]}]{s.text}[/]" if (s := shown.get(b)) else "[dim]-[/]" for b in cols),
        )
    return t


def where(cell: CellResult, paths: list[str] | None = None) -> str:
    """'model/case (backend/device/path)', or with several paths 'predict, eager, jit'."""
    return f"{cell.name} ({cell.backend}/{cell.device}/{', '.join(paths or [cell.path])}{cell.conditions})"


# Numbers in a finding's message: the part that differs between paths with the same problem.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?x?")


def failure_lines(cells: list[CellResult]) -> list[tuple[str, str]]:
    """(status, 'name (backend/device/paths): cause; what the diagnoses add; fix'): one line per
    model case and backend that did not pass, whatever the number of paths it shows on (the
    paths listed, the worst path's numbers). Every finding in full: the table (-v, results/)."""
    folds: dict[tuple, list[CellResult]] = {}
    for c in cells:
        if c.status != "pass" and any(not f.note for f in c.findings):
            folds.setdefault((c.name, c.backend, c.device, c.conditions, c.status), []).append(c)
    lines = []
    for (*_, status), group in folds.items():
        worst = max(group, key=lambda c: multiple(c) or 0.0)
        paths = list(dict.fromkeys(c.path for c in group))
        lines.append((status, f"{where(worst, paths)}: {_one_line(worst, group)}"))
    return lines


def _one_line(worst: CellResult, group: list[CellResult]) -> str:
    """The worst path's problems, a clause per kind: the first in full (the cause) and the others
    in a few words; a kind with several problems (a training case's arrays) says how many more."""
    by_kind: dict[str, dict[str, list[Finding]]] = {}  # kind -> problem (numbers masked) -> on each path
    for c in (worst, *(c for c in group if c is not worst)):
        for f in c.findings:
            if not f.note:
                by_kind.setdefault(f.kind, {}).setdefault(_NUMBER.sub("#", f.message), []).append(f)
    clauses = []
    for i, problems in enumerate(by_kind.values()):
        (first, *same), more = next(iter(problems.values())), len(problems) - 1
        text = first.message if i == 0 else first.short
        if i == 0 and any(f.message != first.message for f in same):
            text += f" (the worst of {len(same) + 1} paths)"
        clauses.append(text + (f" (and {more} more)" if more else ""))
    fixes = dict.fromkeys(fs[0].fix for ps in by_kind.values() for fs in ps.values() if fs[0].fix)
    return "; ".join([*clauses, *fixes])


def finding_lines(cells: list[CellResult]) -> list[tuple[str, str]]:
    """(word, 'name (backend/device/path): finding; fix') for every finding of every cell."""
    return [("note" if f.note else c.status, f"{where(c)}: {f.line}") for c in cells for f in c.findings]


def note_lines(cells: list[CellResult]) -> list[str]:
    """The notes, each text once: the first cell it was found on, and how many more."""
    seen: dict[str, list[CellResult]] = {}
    for c in cells:
        for f in c.findings:
            if f.note:
                seen.setdefault(f.line, []).append(c)
    return [
        f"{where(cs[0])}{f' and {len(cs) - 1} more cells' if len(cs) > 1 else ''}: {line}" for line, cs in seen.items()
    ]


def totals(cells: list[CellResult]) -> str:
    n = {s: sum(c.status == s for c in cells) for s in STYLE}
    extra = "".join(f", {n[s]} {s}" for s in ("unsupported", "skipped") if n[s])
    return f"{len(cells)} cells: {n['pass']} passed, {n['fail']} failed, {n['error']} errors{extra}"


def markdown(cells: list[CellResult]) -> str:
    """The grid and the failures as GitHub-flavoured Markdown (a job summary)."""
    cols, rows = layout(cells)
    out = [f"### {TITLE}", ""]
    out += ["| model/case | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, shown in rows:
        texts = [_md_cell(shown.get(b)) for b in cols]
        out.append(f"| {_md(label)} | " + " | ".join(texts) + " |")
    out += ["", f"_{CAPTION}_", "", f"**{totals(cells)}**", ""]
    out += [f"- **{status.upper()}** {_md(line)}" for status, line in failure_lines(cells)]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(s: Shown | None) -> str:
    return "-" if s is None else f"**{s.text}**" if s.status in ("fail", "error") else s.text


def _md(text: str) -> str:
    """Text safe in a Markdown table cell (underscores inside words are not emphasis in GitHub's Markdown)."""
    return text.replace("|", "\\|")

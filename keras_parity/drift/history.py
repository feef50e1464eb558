"""golden/drift/history.csv: one row per (cell, model case, path), appended, never rewritten.

A cell is identified by platform, device, backend, keras and library release; a model of a
cell that is in the history already is not run again, so an interrupted run resumes where it stopped and a
rerun adds no duplicate. Rows are appended by writing the old bytes plus the new rows aside
and renaming, so the file is never half-written, and the old bytes are checked unchanged.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.paths import DRIFT_HISTORY

COLUMNS = [
    "recorded",  # UTC date the cell ran
    "platform",
    "device",
    "backend",
    "keras",
    "library_version",  # the backend library's release, as pinned by the cell
    "versions",  # every library version in the cell's environment, `name=version;...`
    "model",
    "case",
    "path",
    "rel_l2",  # against the float64 reference, worst output
    "tol_rel_l2",
    "prev_keras",  # the cell one keras release earlier, what the next two columns compare with
    "max_ulp_prev_keras",
    "same_bits_prev_keras",
    "prev_library",  # the cell one library release earlier
    "max_ulp_prev_library",
    "same_bits_prev_library",
    "verdict",  # pass | fail | error | no-such-release | uninstallable | conflict | install-failed | import-error
    "reason",
]
VERDICTS = {"pass", "fail", "error", "no-such-release", "uninstallable", "conflict", "install-failed", "import-error"}
HISTORY = DRIFT_HISTORY


class HistoryError(UsageError):
    pass


def cell_id(row: dict) -> tuple:
    return (row["platform"], row["device"], row["backend"], row["keras"], row["library_version"])


def recorded(rows: list[dict]) -> dict[tuple, set[str]]:
    """Cell id -> the models recorded for it ('*': the cell could not run at all)."""
    out: dict[tuple, set[str]] = {}
    for r in rows:
        out.setdefault(cell_id(r), set()).add(r["model"])
    return out


def read(path: Path = HISTORY, fix: str = "restore the file with git") -> list[dict]:
    """Every row, checked; a corrupt or hand-broken file is an error naming the line and `fix`."""
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        raise HistoryError(f"{path}:{text.count(chr(10)) + 1}: last line is cut short; {fix}")
    lines = text.splitlines()
    if not lines:
        return []
    if lines[0] != ",".join(COLUMNS):
        raise HistoryError(f"{path}:1: header is not {','.join(COLUMNS)!r}; {fix}")
    rows = []
    for n, fields in enumerate(csv.reader(lines[1:]), start=2):
        if len(fields) != len(COLUMNS):
            raise HistoryError(f"{path}:{n}: {len(fields)} fields, expected {len(COLUMNS)}; {fix}")
        row = dict(zip(COLUMNS, fields))
        problem = _invalid(row)
        if problem:
            raise HistoryError(f"{path}:{n}: {problem}; {fix}")
        rows.append(row)
    return rows


def _invalid(row: dict) -> str | None:
    if row["verdict"] not in VERDICTS:
        return f"verdict {row['verdict']!r} is not one of {', '.join(sorted(VERDICTS))}"
    for name in ("rel_l2", "tol_rel_l2"):
        if row[name]:
            try:
                value = float(row[name])
            except ValueError:
                return f"{name} {row[name]!r} is not a number"
            if math.isnan(value) and row["verdict"] == "pass":
                return f"{name} is NaN in a passing row"
    for name in ("max_ulp_prev_keras", "max_ulp_prev_library"):
        if row[name] and not row[name].isdigit():
            return f"{name} {row[name]!r} is not a count"
    for name in ("same_bits_prev_keras", "same_bits_prev_library"):
        if row[name] not in ("", "yes", "no"):
            return f"{name} {row[name]!r} is not yes, no or empty"
    if not all(row[k] for k in ("recorded", "platform", "backend", "keras", "library_version", "model")):
        return "a cell identity field is empty"
    return None


def serialize(rows: list[dict]) -> bytes:
    """The whole file: the header, then the rows in the order given."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    return buf.getvalue().encode()


def append(rows: list[dict], path: Path = HISTORY) -> int:
    """Add the rows of (cell, model)s not yet in the history; returns how many were written."""
    old = path.read_bytes() if path.exists() else b""
    have = recorded(read(path))
    new = [r for r in rows if not have.get(cell_id(r), set()) & {r["model"], "*"}]
    if not new:
        return 0
    for r in new:
        problem = _invalid({c: str(r.get(c, "")) for c in COLUMNS})
        if problem:
            raise HistoryError(f"refusing to append a row of {r.get('model')}: {problem}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerows({c: r.get(c, "") for c in COLUMNS} for r in new)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + buf.getvalue().encode())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if (path.read_bytes() if path.exists() else b"") != old:
            raise HistoryError(f"{path} changed while rows were being added; rerun")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(new)

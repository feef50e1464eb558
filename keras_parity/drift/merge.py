"""Merge drift results from several machines or CI jobs into one history, snapshots and report.

Inputs are the checked-in drift folder (golden/drift) and result folders written by
`nox -s drift -- --group I/N --out DIR` (DIR/history.csv, DIR/snapshots/...). The rules:

- A row is identified by its cell and case: platform, device, backend, keras, library release,
  model, case and path. Identical rows collapse into one.
- The same row with different contents: the newest `recorded` date wins (a rerun supersedes).
  On the same date nothing says which is right: the checked-in row stays if it is one of them,
  else the first in column order; each such conflict is one line of the result, never dropped
  silently.
- A cell that could not run (model `*`) and rows of the same cell that ran: the newer side
  wins, the same date is a conflict (the rows that ran are kept).
- The history is written sorted by date, then cell, then model, case and path, so the same
  inputs give the same bytes in whatever order the folders are named.
- Snapshots (one .npz per cell) are united key by key; where two folders hold different arrays
  under a key, the folder whose rows of that cell are newest wins (ties: by content digest).

Everything is read and checked first; a malformed file stops the merge with one line naming it
and nothing is written. Each file is then written aside and renamed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.drift import history
from keras_parity.drift.matrix import version_key

ROW_ID = ("platform", "device", "backend", "keras", "library_version", "model", "case", "path")
FOLDER_FIX = "copy the folder again from its job's artifact, or leave it out of the merge"


@dataclass
class Source:
    name: str
    rows: list[dict]
    root: Path  # holds snapshots/<platform>/<backend>/<cell>.npz
    checked_in: bool = False


def load(folders: list[Path], root: Path) -> list[Source]:
    """The checked-in history under `root`, then every folder's; raises HistoryError on the first
    malformed or missing file."""
    sources = [Source(str(root / "history.csv"), history.read(root / "history.csv"), root, checked_in=True)]
    for folder in folders:
        path = Path(folder) / "history.csv"
        if not path.is_file():
            raise history.HistoryError(
                f"{folder}: no history.csv; pass folders written by `nox -s drift -- --group I/N --out DIR`"
            )
        sources.append(Source(str(folder), history.read(path, fix=FOLDER_FIX), Path(folder)))
    return sources


def _as_tuple(row: dict) -> tuple:
    return tuple(row[c] for c in history.COLUMNS)


def _cell_label(cell: tuple) -> str:
    platform, device, backend, keras, version = cell
    return f"{platform} {device} keras={keras} {backend}={version}"


def _label(rid: tuple) -> str:
    return f"{_cell_label(rid[:5])} {'/'.join(rid[5:])}"


def _differing(rows: list[tuple]) -> str:
    cols = [c for i, c in enumerate(history.COLUMNS) if len({r[i] for r in rows}) > 1]
    return ", ".join(cols)


def merge_rows(sources: list[Source]) -> tuple[list[dict], list[str]]:
    """The merged rows, sorted, and one line per conflict."""
    candidates: dict[tuple, set[tuple]] = defaultdict(set)
    checked_in: set[tuple] = set()
    for source in sources:
        for row in source.rows:
            candidates[tuple(row[c] for c in ROW_ID)].add(_as_tuple(row))
            if source.checked_in:
                checked_in.add(_as_tuple(row))
    kept, conflicts = {}, []
    for rid, rows in candidates.items():
        newest = max(r[0] for r in rows)  # `recorded` is an ISO date: text order is date order
        top = sorted(r for r in rows if r[0] == newest)
        if len(top) > 1:
            top.sort(key=lambda r: r not in checked_in)  # stable: the checked-in row first, if any
            conflicts.append(
                f"conflict: {_label(rid)} recorded {newest} with different {_differing(top)} "
                f"in {len(top)} rows; kept {'the checked-in row' if top[0] in checked_in else 'the first'}"
            )
        kept[rid] = dict(zip(history.COLUMNS, top[0]))
    settled, more = _settle_failed_cells(list(kept.values()))
    return sorted(settled, key=sort_key), sorted(conflicts) + more


def _settle_failed_cells(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """A cell recorded both as not runnable (`*`) and with rows that ran keeps the newer side."""
    by_cell = defaultdict(list)
    for r in rows:
        by_cell[tuple(r[c] for c in ROW_ID[:5])].append(r)
    out, conflicts = [], []
    for cell, cell_rows in by_cell.items():
        failed = [r for r in cell_rows if r["model"] == "*"]
        ran = [r for r in cell_rows if r["model"] != "*"]
        if not failed or not ran:
            out += cell_rows
            continue
        when_failed, when_ran = max(r["recorded"] for r in failed), max(r["recorded"] for r in ran)
        if when_failed == when_ran:
            conflicts.append(
                f"conflict: {_cell_label(cell)} recorded {when_ran} both as "
                f"{failed[0]['verdict']} and with rows that ran; kept the rows that ran"
            )
        out += failed if when_failed > when_ran else ran
    return out, sorted(conflicts)


def sort_key(row: dict):
    return (
        row["recorded"],
        row["platform"],
        row["device"],
        row["backend"],
        version_key(row["keras"]),
        row["keras"],
        version_key(row["library_version"]),
        row["library_version"],
        row["model"],
        row["case"],
        row["path"],
    )


def merge_snapshots(sources: list[Source], root: Path) -> dict[Path, bytes]:
    """Path under `root` -> merged bytes, for every snapshot any source holds."""
    newest = []  # per source: (platform, backend, keras, library release) -> newest date recorded
    for source in sources:
        dates: dict[tuple[str, str, str, str], str] = {}
        for r in source.rows:
            cell = (r["platform"], r["backend"], r["keras"], r["library_version"])
            dates[cell] = max(dates.get(cell, ""), r["recorded"])
        newest.append(dates)
    found = defaultdict(list)  # relative path -> [(rank, absolute path)]
    for source, dates in zip(sources, newest):
        for path in sorted((source.root / "snapshots").glob("*/*/keras-*.npz")):
            rel = path.relative_to(source.root)
            platform, backend = rel.parts[1], rel.parts[2]
            keras, version = _cell_of(path, backend)
            data = path.read_bytes()
            rank = (dates.get((platform, backend, keras, version), ""), hashlib.sha256(data).hexdigest())
            found[rel].append((rank, path))
    out = {}
    for rel, ranked in found.items():
        arrays: dict[str, np.ndarray] = {}
        for _, path in sorted(ranked):  # the newest last: its arrays win
            try:
                arrays |= golden.read_npz(path)
            except golden.GoldenError:
                raise history.HistoryError(f"{path}: not a readable snapshot; {FOLDER_FIX}") from None
        out[root / rel] = golden.npz_bytes(arrays)
        sidecars = [p.with_suffix(".json") for _, p in sorted(ranked) if p.with_suffix(".json").is_file()]
        if sidecars:
            out[root / rel.with_suffix(".json")] = sidecars[-1].read_bytes()
    return out


def _cell_of(path: Path, backend: str) -> tuple[str, str]:
    """(keras, library release) from a snapshot named keras-<keras>_<backend>-<release>.npz."""
    parts = path.stem[len("keras-") :].split(f"_{backend}-", 1)
    if len(parts) != 2 or not all(parts):
        raise history.HistoryError(
            f"{path}: not a snapshot name (keras-<keras>_{backend}-<release>.npz); rename or remove it, or {FOLDER_FIX}"
        )
    return parts[0], parts[1]


def merge(folders: list[Path], root: Path) -> tuple[int, list[str]]:
    """Merge the folders into `root`'s history and snapshots; returns (rows, conflict lines).
    Nothing is written unless every input reads cleanly."""
    sources = load(folders, root)
    rows, conflicts = merge_rows(sources)
    writes = merge_snapshots(sources, root)
    writes[root / "history.csv"] = history.serialize(rows)
    for path in sorted(writes):
        golden.write_bytes(path, writes[path])
    return len(rows), conflicts

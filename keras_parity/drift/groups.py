"""Groups of drift cells, one per CI job: a deterministic split of the selected cells.

Cells are sorted by backend, library release, then keras release and cut into n contiguous
runs of nearly equal length, so a group mostly holds whole keras series of one library
release and a cell's keras neighbour is usually run, and compared with, in the same job.
Every cell is in exactly one group whatever n is; the split depends only on the cells.
"""

from __future__ import annotations

import hashlib
import re

from keras_parity.drift.matrix import Cell, version_key
from keras_parity.errors import UsageError


class GroupError(UsageError):
    pass


def stable_key(cell: Cell):
    return (cell.backend, version_key(cell.version), cell.version, version_key(cell.keras), cell.keras)


def split(cells: list[Cell], n: int) -> list[list[Cell]]:
    """n groups (some empty when there are fewer cells than groups), in group order."""
    if n < 1:
        raise GroupError(f"the number of groups must be at least 1, got {n}")
    ordered = sorted(set(cells), key=stable_key)
    size, extra = divmod(len(ordered), n)
    out, start = [], 0
    for i in range(n):  # the first `extra` groups take one cell more
        end = start + size + (1 if i < extra else 0)
        out.append(ordered[start:end])
        start = end
    return out


def parse(text: str) -> tuple[int, int]:
    """`2/8` -> (2, 8): group 2 of 8, counted from 1."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise GroupError(f"cannot read {text!r} as a group; write it as I/N with 1 <= I <= N, e.g. 2/8")
    return int(match[1]), int(match[2])


def select(cells: list[Cell], text: str) -> list[Cell]:
    i, n = parse(text)
    return split(cells, n)[i - 1]


def listing(cells: list[Cell], n: int, cell_key) -> dict:
    """The groups as a GitHub Actions matrix: `{"include": [{"group": "1/8", ...}]}`.

    `id` is the group in a form artifact names accept (`1-of-8`), `cells` its cells' labels.

    `key` names the group's cached environments: the cell's own key (cellenv.key) for a group of
    one cell, else a digest of its cells' keys, so a group's cache entry changes exactly when
    one of its cells' pins does. Empty groups are left out: a job would have nothing to run.
    """
    include = []
    for i, group in enumerate(split(cells, n), start=1):
        if not group:
            continue
        keys = sorted(cell_key(c) for c in group)
        key = keys[0] if len(keys) == 1 else hashlib.sha256(" ".join(keys).encode()).hexdigest()[:16]
        include.append(
            {"group": f"{i}/{n}", "id": f"{i}-of-{n}", "cells": ", ".join(c.label for c in group), "key": key}
        )
    return {"include": include}

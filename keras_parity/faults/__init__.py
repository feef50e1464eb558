"""The suite's own fidelity, measured: every fault of the catalogue (faults/catalogue.py) planted
through `parity --patch` and judged as a user's run would be, beside clean runs on two CPU settings.

- **Touched**: a model x case x backend whose arrays (any path) differ in a bit from the clean
  run's on this machine: the fault reached it. Ground truth, from the runs themselves.
- **Recall**: a fault is caught when every cell it touched fails (or errors); recall is the
  share of the faults that touched anything that are caught. A rounding control (the same math
  rounded differently) must pass instead: a cell it fails is a false alarm.
- **False alarms**: cells that do not pass in clean runs, natively and under a foreign CPU's
  kernels (OPENBLAS_CORETYPE=Haswell and an AVX2 cap), `clean` runs each. A fault run's cell that
  fails with its bits unchanged is counted apart (`beyond_bits`): a changed default is named
  wherever the model uses it.
- **Localization**: of the touched forward cells the suite localized, the share naming the first
  layer whose output changed (its sketch, against the clean run's: the true first layer).
Every run works on a copy of golden/ in a temporary folder; golden/ itself is never written.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_parity import golden, paths
from keras_parity.errors import InfraError
from keras_parity.faults.catalogue import Fault

FOREIGN = {"OPENBLAS_CORETYPE": "Haswell"}  # with --isa-cap avx2: the AMD machines' kernels, emulated
LOCALIZED = "localized: first divergent layer '"


@dataclass(frozen=True)
class Cell:
    """One model x case x backend of a fault's run, against the clean run."""

    model: str
    case: str
    backend: str
    touched: bool
    failed: bool  # some path failed or errored
    localized: str | None = None  # the layer the suite named first
    first_moved: str | None = None  # the first layer whose output changed (the truth)
    ratio: float | None = None  # its worst error over its tolerance (rel L2), a pass's margin
    error: str | None = None  # the cell errored (the patch broke the model rather than changed it)
    problem: str | None = None  # a failing cell's first problem, as parity.json says it


@dataclass(frozen=True)
class FaultResult:
    fault: Fault
    cells: tuple[Cell, ...]
    seconds: float

    @property
    def touched(self) -> list[Cell]:
        return [c for c in self.cells if c.touched]

    @property
    def escaped(self) -> list[Cell]:
        return [c for c in self.touched if not c.failed]

    @property
    def crashed(self) -> list[Cell]:
        """Touched cells that errored: the patch broke the model instead of changing its numbers."""
        return [c for c in self.touched if c.error]

    @property
    def caught(self) -> bool:
        return bool(self.touched) and not self.escaped and not self.crashed

    @property
    def cried_wolf(self) -> list[Cell]:
        """A rounding control's touched cells that failed: false alarms (catalogue.Fault.rounding)."""
        return [c for c in self.touched if c.failed] if self.fault.rounding else []

    @property
    def beyond_bits(self) -> list[Cell]:
        """Cells whose bits the fault did not change that failed anyway: a changed Keras default a
        cell's model uses is named even where these inputs do not show it (judge/defaults.py)."""
        return [c for c in self.cells if c.failed and not c.touched]

    @property
    def localizations(self) -> list[Cell]:
        return [c for c in self.touched if c.localized and c.first_moved]


@dataclass(frozen=True)
class CleanRun:
    setting: str  # native | foreign
    not_passing: tuple[str, ...]  # 'model/case/backend/path: status'
    judged: int  # cells judged
    seconds: float


class Campaign:
    """Runs `parity` over the models, clean and with each fault, in one temporary folder."""

    def __init__(self, models: list[str], backends: list[str], work: Path, log=print):
        self.models, self.backends, self.work, self.log = models, backends, work, log
        self.goldens = work / "golden"
        shutil.copytree(paths.GOLDEN, self.goldens, ignore=shutil.ignore_patterns("*.obtained.npz", "drift"))
        self.order = _layer_orders(self.goldens, models)
        self.baseline: Path | None = None

    def parity(self, out: Path, patch: Path | None = None, foreign: bool = False) -> tuple[list[dict], float]:
        """One `keras-parity parity` in a process of its own: its cells (parity.json) and seconds."""
        argv = [sys.executable, "-m", "keras_parity", "parity", "--golden-dir", str(self.goldens), "--out", str(out)]
        argv += [a for m in self.models for a in ("--model", m)] + [a for b in self.backends for a in ("--backend", b)]
        argv += ["--patch", str(patch)] if patch else []
        argv += ["--isa-cap", "avx2"] if foreign else []
        env = {**os.environ, **(FOREIGN if foreign else {})}
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=paths.ROOT)
        if proc.returncode not in (0, 1, 3) or not (out / "parity.json").exists():
            raise InfraError(f"parity did not finish (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        return json.loads((out / "parity.json").read_text())["cells"], time.perf_counter() - t0

    def clean(self, setting: str, i: int) -> CleanRun:
        out = self.work / f"clean-{setting}-{i}"
        cells, seconds = self.parity(out, foreign=setting == "foreign")
        if setting == "native" and self.baseline is None:
            self.baseline = out / "raw"
        bad = tuple(f"{c['model']}/{c['case']}/{c['backend']}/{c['path']}: {c['status']}" for c in cells
                    if c["status"] != "pass")  # fmt: skip
        return CleanRun(setting, bad, len(cells), seconds)

    def fault(self, fault: Fault) -> FaultResult:
        """One fault planted: its cells, each touched or not (against the first native clean run)."""
        assert self.baseline is not None, "a native clean run comes first"
        patch = self.work / f"{fault.name}.py"
        patch.write_text(fault.patch())
        out = self.work / f"fault-{fault.name}"
        cells, seconds = self.parity(out, patch)
        return FaultResult(fault, tuple(self._cells(cells, out / "raw")), seconds)

    def _cells(self, cells: list[dict], raw: Path) -> list[Cell]:
        grouped: dict[tuple[str, str, str], list[dict]] = {}
        for c in cells:
            grouped.setdefault((c["model"], c["case"], c["backend"]), []).append(c)
        out = []
        for (model, case, backend), mine in grouped.items():
            if case == "*":  # the whole model errored on that backend: it reached every case
                why = "; ".join(p for c in mine for p in c["problems"])[:300]
                out += [Cell(model, k, backend, True, True, error=why) for k in self._cases(model)]
                continue
            failed = any(c["status"] in ("fail", "error") for c in mine)
            named = [p[len(LOCALIZED) :].split("'")[0] for c in mine for p in c["problems"] if p.startswith(LOCALIZED)]
            touched, first = self._moved(raw, model, case, backend)
            ratio = max((_ratio(c) for c in mine), default=None)
            error = next(("; ".join(c["problems"])[:300] for c in mine if c["status"] == "error"), None)
            said = [p for c in mine if c["status"] != "pass" for p in c["problems"] if not p.startswith("note: ")]
            problem = said[0][:300] if said else None
            loc = named[0] if named else None
            out.append(Cell(model, case, backend, touched, failed, loc, first, ratio, error, problem))
        return out

    def _cases(self, model: str) -> list[str]:
        from keras_parity.registry.builtin import builtin_registry

        return [c.name for c in builtin_registry()[model].cases]

    def _moved(self, raw: Path, model: str, case: str, backend: str) -> tuple[bool, str | None]:
        """(whether any array of the cell differs from the clean run's, the first layer whose sketch does)."""
        assert self.baseline is not None
        got, want = _arrays(raw / f"{backend}.npz"), _arrays(self.baseline / f"{backend}.npz")
        mine, clean = golden.part(got, model, case), golden.part(want, model, case)
        touched = mine.keys() != clean.keys() or any(not _same(v, clean[k]) for k, v in mine.items())
        sketches = golden.part(_arrays(raw / f"{backend}.sketches.npz"), model, case)
        before = golden.part(_arrays(self.baseline / f"{backend}.sketches.npz"), model, case)
        moved = [k for k, v in sketches.items() if k in before and not _same(v, before[k])]
        rank = {name: i for i, name in enumerate(self.order.get(model, {}).get(case, []))}
        first = min(moved, key=lambda k: (rank.get(k.split(":")[0], len(rank)), k), default=None)
        return touched, first.split(":")[0] if first else None


def _ratio(cell: dict) -> float:
    """A cell's worst output error over its tolerance, in relative L2 (0 where nothing is measured)."""
    tol = (cell.get("tol") or {}).get("rel_l2") or 0.0
    errors = [o.get("rel_l2") or 0.0 for o in (cell.get("outputs") or {}).values()]
    return max(errors, default=0.0) / tol if tol else 0.0


@functools.lru_cache(maxsize=8)  # a run's files are read once for all its cells, the baseline's once
def _arrays(path: Path) -> dict[str, np.ndarray]:
    return golden.read_npz(path) if path.exists() else {}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _layer_orders(root: Path, models: list[str]) -> dict[str, dict[str, list[str]]]:
    """model -> case -> its layers in graph order (the goldens' graph, by the case's builder)."""
    from keras_parity.registry.builtin import builtin_registry

    out: dict[str, dict[str, list[str]]] = {}
    for m in models:
        graph = golden.read_graph(golden.graph_path(m, root))
        spec = builtin_registry()[m]
        out[m] = {c.name: [x["name"] for x in graph.get(c.builder, {}).get("config", {}).get("layers", [])]
                  for c in spec.cases}  # fmt: skip
    return out


def workspace() -> tempfile.TemporaryDirectory:
    """The campaign's temporary folder (copied goldens, patches, every run): gone when it ends."""
    return tempfile.TemporaryDirectory(prefix="keras-parity-faults-")

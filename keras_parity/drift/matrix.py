"""The drift matrix of requirements/pins.toml: which (keras, backend release) cells to run.

A cell is one keras release with one release of one backend's library. Its neighbours are
the cells one release earlier on either axis: they are what its bits are compared with.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.pins import PINS


class MatrixError(UsageError):
    pass


@dataclass(frozen=True, order=True)
class Cell:
    backend: str
    keras: str
    version: str

    @property
    def label(self) -> str:
        return f"keras={self.keras} {self.backend}={self.version}"

    @property
    def slug(self) -> str:
        return f"keras-{self.keras}_{self.backend}-{self.version}"


@dataclass(frozen=True)
class Matrix:
    keras: tuple[str, ...]
    releases: dict[str, tuple[str, ...]]  # backend -> releases, oldest first
    packages: dict[str, str]  # backend -> requirement name, e.g. 'jax[cpu]'
    resolved_at: str
    window: int
    cache_limit_gb: float = 40.0
    # releases `drift --new` added after `resolved_at`, 'jax==0.11.0' -> the date their cells
    # resolve as of (the older cells keep theirs, and their cached environments)
    added: dict[str, str] = field(default_factory=dict)

    def requirements(self, cell: Cell) -> list[str]:
        return [f"keras=={cell.keras}", f"{self.packages[cell.backend]}=={cell.version}"]

    def resolved_for(self, cell: Cell) -> str:
        """The date a cell's other requirements resolve as of: the latest of the table's and
        those of its two releases, when `--new` added them later."""
        dates = [self.added.get(f"keras=={cell.keras}"), self.added.get(f"{cell.backend}=={cell.version}")]
        return max([self.resolved_at, *(d for d in dates if d)])

    def cells(self, backends, full: bool = False, axes=()) -> list[Cell]:
        """The default window (newest releases), the full matrix, or the union of the given axes
        ('keras', 'library'), each walked with the newest release held on the other; sorted so
        that every cell comes after its neighbours."""
        out = set()
        for b in backends:
            if full or not axes:
                n = None if full else -self.window
                keras, versions = (self.keras, self.releases[b]) if full else (self.keras[n:], self.releases[b][n:])
                out |= {Cell(b, k, v) for k in keras for v in versions}
            if "keras" in axes:
                out |= {Cell(b, k, self.releases[b][-1]) for k in self.keras}
            if "library" in axes:
                out |= {Cell(b, self.keras[-1], v) for v in self.releases[b]}
        return sorted(out, key=self.order)

    def order(self, cell: Cell):
        """Neighbours first: a cell's comparisons need theirs done."""
        return (version_key(cell.keras), version_key(cell.version), cell.backend)

    def previous(self, cell: Cell, axis: str, among=None) -> Cell | None:
        """The cell one release earlier on `axis` ('keras' or 'library'), within `among` if given."""
        releases = self.keras if axis == "keras" else self.releases[cell.backend]
        current = cell.keras if axis == "keras" else cell.version
        older = [v for v in releases if version_key(v) < version_key(current)]
        for v in reversed(older):
            prev = Cell(cell.backend, v, cell.version) if axis == "keras" else Cell(cell.backend, cell.keras, v)
            if among is None or prev in among:
                return prev
        return None

    def parse_cell(self, words: list[str]) -> Cell:
        """`keras=3.14.0 jax=0.9.2` (keras defaults to the newest release of the matrix)."""
        pins = {}
        for w in words:
            name, sep, version = w.partition("=")
            if not sep or not version:
                raise MatrixError(f"cannot read {w!r} as a pin; write cells as `keras=3.14.0 jax=0.9.2`")
            if name != "keras" and name not in self.releases:
                raise MatrixError(f"unknown library {name!r} in {w!r}; use keras or one of {', '.join(self.releases)}")
            pins[name] = version
        backends = [b for b in pins if b != "keras"]
        if len(backends) != 1:
            raise MatrixError(
                f"a cell names exactly one backend library, got {backends or 'none'} in {' '.join(words)!r}"
            )
        return Cell(backends[0], pins.get("keras", self.keras[-1]), pins[backends[0]])


def version_key(v: str):
    """Release order without a dependency: numeric parts first, local labels (+cpu) ignored."""
    return tuple(int(p) for p in re.findall(r"\d+", v.split("+")[0]))


def load(path: Path = PINS) -> Matrix:
    try:
        data = tomllib.loads(Path(path).read_text())["drift"]
        backends = data["backends"]
        return Matrix(
            keras=tuple(data["keras"]),
            releases={b: tuple(d["releases"]) for b, d in backends.items()},
            packages={b: d["package"] for b, d in backends.items()},
            resolved_at=data["resolved_at"],
            window=int(data.get("window", 2)),
            cache_limit_gb=float(data.get("cache_limit_gb", 40)),
            added={str(k): str(v) for k, v in data.get("added", {}).items()},
        )
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise MatrixError(f"{path}: the [drift] table is unreadable ({exc!r}); compare it with docs/drift.md") from None

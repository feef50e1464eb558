"""`drift --new`: the releases of keras and the backend libraries newer than the drift table.

The package index lists them; a release counts when it is final (no pre- or development
release) and has at least one file that is not yanked, and only the newest patch of each
minor is taken, as in the table. Each is checked installable on this Python and platform
with the cell's other pin (a backend release with the newest keras of the table; a keras
release alone, its cells with older backends being the matrix's own conflicts) by a dry
run of the same install a cell makes; one that needs a newer Python than this one is checked
for the Python of an image that has it (keras_parity/drift/cellimage.py: its cells run
there). The installable ones are added to requirements/pins.toml; every one found is
recorded in golden/drift/releases.json with the reason a release cannot be installed, and
the report lists them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from packaging.version import InvalidVersion, Version

from keras_parity.drift import cellenv, cellimage, matrix
from keras_parity.drift.matrix import Cell, Matrix, MatrixError, version_key
from keras_parity.paths import RELEASES
from keras_parity.pins import PINS
from keras_parity.run.envs import index_args
from keras_parity.run.envs import uv as envs_uv

RECORD = RELEASES
PYPI = "https://pypi.org/pypi/{name}/json"

# name on the index -> {version: [file, ...]}, each file as PyPI's JSON API gives it
# (`yanked`, `upload_time_iso_8601`, `filename`)
Index = Callable[[str], dict[str, list[dict]]]


def pypi(name: str) -> dict[str, list[dict]]:
    """The releases of one project from PyPI's JSON API."""
    try:
        with urllib.request.urlopen(PYPI.format(name=name), timeout=60) as resp:
            return json.load(resp)["releases"]
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError) as exc:
        why = f"cannot read {name}'s releases from PyPI ({exc}); rerun --new when pypi.org is reachable"
        raise MatrixError(why) from None


def project(m: Matrix, lib: str) -> str:
    """The index's name of a library of the table: 'jax[cpu]' -> 'jax'."""
    return "keras" if lib == "keras" else re.sub(r"\[.*\]", "", m.packages[lib])


def _final(version: str) -> bool:
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    return not (v.is_prerelease or v.is_devrelease)


def newer(m: Matrix, index: Index) -> dict[str, list[tuple[str, str]]]:
    """lib -> [(version, first upload time)] newer than the table's newest, oldest first:
    final releases with a file not yanked, the newest patch of each minor."""
    out = {}
    for lib in ("keras", *m.releases):
        known = m.keras if lib == "keras" else m.releases[lib]
        newest = max(version_key(v) for v in known)
        by_minor: dict[tuple, tuple[str, str]] = {}
        for version, files in index(project(m, lib)).items():
            live = [f for f in files if not f.get("yanked")]
            if not live or not _final(version) or version_key(version) <= newest:
                continue
            uploaded = min(f.get("upload_time_iso_8601") or f.get("upload_time") or "" for f in live)
            minor = version_key(version)[:2]
            if minor not in by_minor or version_key(version) > version_key(by_minor[minor][0]):
                by_minor[minor] = (version, uploaded)
        out[lib] = sorted(by_minor.values(), key=lambda r: version_key(r[0]))
    return out


def _z(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_date(m: Matrix, uploaded: str, now: datetime.datetime) -> str | None:
    """The date a new release's cells resolve as of: none of their own (the table's) when it was
    uploaded before the table's date, else now, so the install can see it."""
    if not uploaded:
        return _z(now)
    when = datetime.datetime.fromisoformat(uploaded.replace("Z", "+00:00"))
    when = when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
    return None if _z(when) < m.resolved_at else _z(now)


class Checked(NamedTuple):
    """How a release installs: verdict 'installable' (here, or in an image of `python` when it
    needs a newer one than this: `reason` says why) or the kind of failure, with uv's reason."""

    kind: str
    reason: str = ""
    python: str = f"{sys.version_info[0]}.{sys.version_info[1]}"


def check(m: Matrix, lib: str, version: str, exclude_newer: str, run=subprocess.run) -> Checked:
    """Whether the release installs with the cell's other pin: here, or else for the Python of an
    image (drift/cellimage.py) when this one is too old for it."""
    try:
        _dry_run(m, lib, version, exclude_newer, run)
    except cellenv.CellFailure as exc:
        newer = cellimage.python_needed(exc.reason) if exc.kind == "uninstallable" else None
        if newer is None:
            return Checked(exc.kind, exc.reason)
        try:
            cellimage.resolve(_requirements(m, lib, version), newer, exclude_newer, run=run)
        except cellenv.CellFailure as again:
            return Checked(again.kind, f"{exc.reason}; {again.reason}")
        return Checked("installable", f"in an image of Python {newer}: {exc.reason}", newer)
    return Checked("installable")


def _requirements(m: Matrix, lib: str, version: str) -> list[str]:
    return [f"keras=={version}"] if lib == "keras" else m.requirements(Cell(lib, m.keras[-1], version))


def _dry_run(m: Matrix, lib: str, version: str, exclude_newer: str, run) -> None:
    """The install a cell makes, dry, in a throwaway environment of this Python; a CellFailure
    when it cannot be made."""
    reqs = _requirements(m, lib, version)
    with tempfile.TemporaryDirectory(prefix="drift-check-") as tmp:
        env = Path(tmp) / "env"
        uv = envs_uv()
        made = run([*uv, "venv", "--quiet", "--python", sys.executable, str(env)], capture_output=True, text=True)
        if made.returncode != 0:
            why = made.stderr.strip().splitlines()[-1] if made.stderr.strip() else "uv venv failed"
            raise cellenv.CellFailure("install-failed", why)
        cmd = [
            *uv, "pip", "install", "--dry-run", "--quiet", "--python", str(env / "bin" / "python"),
            "--exclude-newer", exclude_newer, *index_args("\n".join(reqs)), *reqs,
        ]  # fmt: skip
        cellenv.run_install(cmd, run=run)


# --- requirements/pins.toml, edited as text so its comments stay --------------------------


def _section(lines: list[str], header: str) -> tuple[int, int]:
    """(first line after the header, end) of a table of pins.toml."""
    start = next((i + 1 for i, ln in enumerate(lines) if ln.strip() == header), None)
    if start is None:
        raise MatrixError(f"{PINS.name}: no {header} table; restore the file with git")
    end = next((i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    return start, end


def _extend_list(lines: list[str], header: str, key: str, versions: list[str]) -> None:
    start, end = _section(lines, header)
    for i in range(start, end):
        name, sep, rest = lines[i].partition("=")
        if sep and name.strip() == key:
            value, hash_, comment = rest.partition("#")
            try:
                old = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                raise MatrixError(
                    f"{PINS.name}: {header} {key} is not a one-line list; write it on one line and rerun --new"
                ) from None
            new = old + [v for v in versions if v not in old]
            tail = f"  #{comment.rstrip()}" if hash_ else ""
            lines[i] = f"{name.rstrip()} = [{', '.join(json.dumps(v) for v in new)}]{tail}"
            return
    raise MatrixError(f"{PINS.name}: {header} has no {key} list; restore the file with git")


def add_to_pins(added: dict[str, list[str]], dates: dict[str, str], path: Path = PINS) -> None:
    """Append releases to the table's lists (lib -> versions) and their resolution dates
    ('jax==0.11.0' -> date) to [drift.added], written aside then renamed."""
    text = Path(path).read_text()
    lines = text.splitlines()
    for lib, versions in added.items():
        if versions:
            header, key = ("[drift]", "keras") if lib == "keras" else (f"[drift.backends.{lib}]", "releases")
            _extend_list(lines, header, key, versions)
    if dates:
        if "[drift.added]" not in (ln.strip() for ln in lines):
            lines += [
                "",
                "# Releases `drift --new` added after resolved_at: their cells resolve as of these dates.",
                "[drift.added]",
            ]
        start, end = _section(lines, "[drift.added]")
        lines[end:end] = [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(dates.items())]
    new = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        matrix.load(Path(tmp))  # the edited table still reads, or the file is left as it was
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- the record ----------------------------------------------------------------------------


def record(entries: list[dict], path: Path = RECORD) -> None:
    """Merge checked releases into the record: one entry per (library, version, python, platform)."""
    old = json.loads(path.read_text())["releases"] if path.exists() else []
    ident = lambda e: (e["library"], e["version"], e["python"], e["platform"])  # noqa: E731
    merged = {ident(e): e for e in old} | {ident(e): e for e in entries}
    rows = sorted(merged.values(), key=lambda e: (e["library"], version_key(e["version"]), e["platform"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"releases": rows}, indent=1) + "\n")
    os.replace(tmp, path)


def discover(m: Matrix, index: Index = pypi, *, path: Path = PINS, rec: Path = RECORD, run=subprocess.run, log=print):
    """Find, check, record and add the new releases. Returns lib -> the versions added."""
    now = datetime.datetime.now(datetime.UTC)
    plat = f"{sys.platform}-{platform.machine().lower()}"
    added: dict[str, list[str]] = {}
    dates, entries = {}, []
    for lib, found in newer(m, index).items():
        for version, uploaded in found:
            date = resolve_date(m, uploaded, now)
            kind, reason, python = check(m, lib, version, date or m.resolved_at, run=run)
            log(f"{lib} {version}: {kind}{f' ({reason})' if reason else ''}")
            entries.append(
                {
                    "library": lib, "version": version, "uploaded": uploaded, "python": f"cp{python.replace('.', '')}",
                    "platform": plat, "checked": _z(now), "verdict": kind, "reason": reason[:300],
                }
            )  # fmt: skip
            if kind == "installable":
                added.setdefault(lib, []).append(version)
                if date:
                    dates[f"{lib}=={version}"] = date
    if not entries:
        log(f"no release newer than the table of {path.name}")
    record(entries, rec)
    if added:
        add_to_pins(added, dates, path)
        log(f"added to {path.name}: {', '.join(f'{lib} {v}' for lib, vs in added.items() for v in vs)}")
    elif entries:
        log(f"no installable release newer than the table of {path.name}: nothing added, nothing to run")
    return added


def new_cells(m: Matrix, added: dict[str, list[str]]) -> list[Cell]:
    """The added releases' cells in the default window (a backend release with the newest
    keras releases, a keras release with each backend's newest), each with the cell one
    release earlier on the added release's axis: what the new bits are compared with."""
    cells = set()
    for lib, versions in added.items():
        for v in versions:
            if lib == "keras":
                mine = {Cell(b, v, r) for b, rs in m.releases.items() for r in rs[-m.window :]}
            else:
                mine = {Cell(lib, k, v) for k in m.keras[-m.window :]}
            axis = "keras" if lib == "keras" else "library"
            cells |= mine | {p for c in mine if (p := m.previous(c, axis))}
    return sorted(cells, key=m.order)

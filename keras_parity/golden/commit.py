"""A model's goldens replaced as a whole: a reader sees the old set or the new one, never a mix.

`replace_set` stages the new set in `<root>/.<model>.staging-<pid>/` (the new files, and a hard
link to every other file of the live `<root>/<model>/`: other CPUs' snapshots, obtained arrays),
then swaps it in with one rename (renameat2 RENAME_EXCHANGE; where the filesystem lacks it, two
renames, the old set parked as `.<model>.old-<pid>` in between) and removes the old set. A run
killed on the way leaves a stray staging or old folder, which the next run removes; an old set
parked with no live one is put back first (`recover`), so no snapshot is ever lost.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
from pathlib import Path

STAGING, PARKED = "staging", "old"
# Fault injection (tests/test_golden_kill.py): the writer kills itself (SIGKILL) at its Nth step.
STOP_AT = "KERAS_PARITY_GOLDEN_STOP_AT"
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_steps = 0


def _step() -> None:
    """One step of a write done; with STOP_AT=N set, the Nth step is the last one."""
    global _steps
    _steps += 1
    if os.environ.get(STOP_AT) == str(_steps):
        os.kill(os.getpid(), signal.SIGKILL)


def is_temp(name: str) -> bool:
    """A file written aside by an atomic write (`.<name>.<random>.tmp`), never part of a set."""
    return name.startswith(".") and name.endswith(".tmp")


def _stray(root: Path, model: str, kind: str) -> list[Path]:
    return sorted(p for p in Path(root).glob(f".{model}.{kind}-*") if p.is_dir())


def _alive(folder: Path) -> bool:
    """Whether the process that made this staging folder still runs (another `golden` at work)."""
    pid = folder.name.rsplit("-", 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def half_written(root: Path, model: str) -> Path | None:
    """The old set a stopped replacement parked while the live folder is missing, else None."""
    parked = _stray(root, model, PARKED)
    return parked[-1] if parked and not (Path(root) / model).exists() else None


SET = ("reference.npz", "reference.json")  # what every model's set holds


def incomplete(root: Path, model: str) -> str | None:
    """What makes the model's set half-written, or None: the live folder missing with the old
    set parked beside it, or some of the files every set holds missing while others are there
    (graph.json too beside layer sketches)."""
    parked = half_written(root, model)
    if parked is not None:
        return f"its folder is missing while the previous set waits in {parked}"
    folder = Path(root) / model
    needed = SET + (("graph.json",) if (folder / "layers.npz").exists() else ())  # layer sketches: their graph
    missing = [name for name in needed if not (folder / name).exists()]
    there = [name for name in (*SET, "graph.json", "layers.npz") if (folder / name).exists()]
    if there and missing:
        return f"{', '.join(missing)} missing beside {', '.join(there)}"
    return None


def unfinished(root: Path, model: str) -> Path | None:
    """A staging folder a stopped `golden` left beside the model's live set, else None."""
    left = [p for p in _stray(root, model, STAGING) if not _alive(p)]
    return left[-1] if left else None


def recover(root: Path, model: str) -> list[str]:
    """Undo what a killed replacement left: a parked old set with no live one goes back in
    place; stray staging and old folders and temp files are removed. Returns what was done."""
    root, done = Path(root), []
    live = root / model
    parked = half_written(root, model)
    if parked is not None:
        os.rename(parked, live)
        done.append(f"put the previous set back from {parked.name}")
    for stray in _stray(root, model, STAGING) + _stray(root, model, PARKED):
        if not _alive(stray):
            shutil.rmtree(stray, ignore_errors=True)
            done.append(f"removed {stray.name}")
    for temp in (p for p in live.rglob(".*.tmp") if p.is_file()) if live.exists() else ():
        temp.unlink(missing_ok=True)
        done.append(f"removed {temp.relative_to(root)}")
    return done


def replace_set(live: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Replace the set in folder `live` by `files` (path relative to it -> bytes); every other
    file of the set is kept. Returns {path: 'new' | 'changed'} of the files that differ."""
    live = Path(live)
    moved = {rel: _differs(live / rel, data) for rel, data in files.items()}
    moved = {rel: how for rel, how in moved.items() if how}
    temps = [p for p in live.rglob(".*.tmp") if p.is_file()] if live.exists() else []
    if not moved and not temps:
        return {}
    staging = live.parent / f".{live.name}.{STAGING}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    live.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir()
    if live.exists():
        os.chmod(staging, live.stat().st_mode & 0o7777)
        _link_others(live, staging, set(moved))
    for rel in sorted(moved):
        _write(staging / rel, files[rel])
        _step()
    _swap(staging, live)
    shutil.rmtree(staging, ignore_errors=True)  # the old set, after a swap
    _step()
    return moved


def _differs(path: Path, data: bytes) -> str:
    if not path.exists():
        return "new"
    return "" if path.read_bytes() == data else "changed"


def _link_others(live: Path, staging: Path, replaced: set[str]) -> None:
    """Every file of the live set not replaced, hard-linked into the staging folder (its bytes
    are never written in place, so a link is as good as a copy and costs nothing)."""
    for src in sorted(live.rglob("*")):
        rel = src.relative_to(live).as_posix()
        if src.is_dir() or rel in replaced or is_temp(src.name):
            continue
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # a filesystem without hard links
            shutil.copy2(src, dst)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one rename (Linux renameat2); False where that is not available."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        return False
    return rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _swap(staging: Path, live: Path) -> None:
    """The staged set in place of the live one; the old set left at the staging path."""
    if not live.exists():
        os.rename(staging, live)
        staging.mkdir()  # nothing to remove, like an exchange with no old set
    elif not _exchange(staging, live):
        parked = live.parent / f".{live.name}.{PARKED}-{os.getpid()}"
        os.rename(live, parked)
        _step()
        os.rename(staging, live)
        os.rename(parked, staging)
    _step()
    fd = os.open(live.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""What tests/test_bad_inputs.py builds its cases from: a case of the table, the files it plants in
a temporary folder (corrupt, pickled, truncated, damaged), and a fingerprint of golden/."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
Writer = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One bad input: the command line (run in a temporary folder holding `files`), the environment
    changes, the exit code and a piece of the one line the command must end with."""

    id: str
    argv: tuple[str, ...]
    code: int
    says: str
    files: dict[str, Writer] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def case(id: str, argv: str | list[str], code: int, says: str, files=None, env=None) -> Case:
    """A Case; `argv` as one string is split on spaces (a list keeps words with spaces)."""
    words = tuple(argv.split()) if isinstance(argv, str) else tuple(argv)
    return Case(id, words, code, says, dict(files or {}), dict(env or {}))


def plant(folder: Path, files: dict[str, Writer]) -> None:
    for rel, write in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)


# --- files ----------------------------------------------------------------------------------


def raw(data: bytes) -> Writer:
    return lambda p: p.write_bytes(data)


def text(data: str) -> Writer:
    return lambda p: p.write_text(data)


def folder(*children: str) -> Writer:
    """A directory, with empty files of these names in it."""

    def write(p: Path) -> None:
        p.mkdir(parents=True, exist_ok=True)
        for c in children:
            (p / c).write_bytes(b"")

    return write


def npz(**arrays) -> Writer:
    """A sound .npz of these arrays (default: one float32 array 'x')."""
    arrays = arrays or {"x": np.zeros((2, 3), np.float32)}
    return lambda p: p.write_bytes(_npz_bytes(arrays))


def _npz_bytes(arrays: dict, pickles: bool = False) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_member(array: np.ndarray) -> bytes:
    """One array as the .npy bytes an .npz holds for it."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def pickled_npz() -> Writer:
    """An .npz whose array holds Python objects: loading it would run pickle."""
    return lambda p: p.write_bytes(_npz_bytes({"x": np.array([{"code": "os.system"}, None], dtype=object)}))


def truncated_npz() -> Writer:
    """A sound .npz cut in half (its central directory is gone)."""
    data = _npz_bytes({"x": np.arange(64, dtype=np.float32)})
    return raw(data[: len(data) // 2])


def zip_of(members: dict[str, bytes], stored: bool = False) -> Writer:
    """A zip archive of these members (stored uncompressed, so a flipped byte stays a CRC error)."""
    how = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED

    def write(p: Path) -> None:
        with zipfile.ZipFile(p, "w", how) as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    return write


def damaged_member(members: dict[str, bytes], victim: str) -> Writer:
    """A zip whose member `victim` has one byte flipped after its CRC was written."""

    def write(p: Path) -> None:
        zip_of(members, stored=True)(p)
        data = bytearray(p.read_bytes())
        at = data.index(members[victim])  # stored: the member's bytes appear as they are
        data[at] ^= 0xFF
        p.write_bytes(bytes(data))

    return write


CONFIG = json.dumps({"class_name": "Functional", "config": {"input_layers": [["x", 0, 0]], "layers": []}}).encode()
INPUT_LAYER = {"class_name": "InputLayer", "config": {"name": "x", "batch_shape": [None, 3], "dtype": "float32"}}
CONFIG_WITH_INPUT = json.dumps(
    {"class_name": "Functional", "config": {"input_layers": [["x", 0, 0]], "layers": [INPUT_LAYER]}}
).encode()  # fmt: skip


def keras_file(config: bytes = CONFIG) -> Writer:
    """A .keras archive the harness accepts without Keras (a zip holding config.json)."""
    return zip_of({"config.json": config, "metadata.json": b"{}", "model.weights.h5": b"\0" * 64})


# --- golden/ --------------------------------------------------------------------------------


def fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` by relative path: (size, mtime in ns). A written, renamed,
    added or removed file changes it (a folder's mtime moves when an entry is added or removed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    st = root.stat()
    out["."] = (0, st.st_mtime_ns)
    return out

"""The golden format: byte-stable .npz (no pickle) plus sorted JSON, written aside then renamed.

Layout, per model:
  golden/<model>/reference.npz            float64 reference, keys '<case>/<output>'
  golden/<model>/reference.json           seed, weight/input checksums, config hash, shapes
  golden/<model>/graph.json               each builder's Keras config, weight list and trainable weights
  <golden-dir>/<model>/weights.npz        a .keras file's weights, keys its variable paths (your own models)
  Training cases (keras_parity/run/training.py) add keys '<case>/<group>/<weight path>'; arrays
  of more than 4096 values keep 1024 fixed positions, under '<key>@sample'.
  golden/<model>/snapshots/<platform>/<backend>.npz   float32 outputs, keys '<case>/<path>/<output>'
  golden/<model>/snapshots/<platform>/<backend>.json  versions, knobs, device, and the machine
      facts the platform key is a digest of (keras_parity/run/machine.py); bits are expected to
      match only within one key, and `parity` compares with another key's only to report it
A mismatch in `parity` writes golden/<model>/<backend>.obtained.npz beside them (git-ignored;
write_obtained).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from keras_parity.errors import UsageError
from keras_parity.paths import GOLDEN
from keras_parity.run import machine

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: same numbers, same bytes


class GoldenError(UsageError):
    """A golden file that is missing or unreadable; the message says how to fix it, `problem`
    says what is wrong without the fix (for a caller that knows the exact command)."""

    def __init__(self, problem: str, fix: str = "regenerate it with `nox -s golden`"):
        super().__init__(f"{problem}; {fix}")
        self.problem = problem


def _atomic_write(path: Path, data: bytes) -> bool:
    """Write unless identical; returns True when the file changed. Never half-written."""
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_bytes(path: Path, data: bytes) -> bool:
    """Written aside, then renamed; returns True when the file changed."""
    return _atomic_write(path, data)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    return _atomic_write(path, npz_bytes(arrays))


def json_bytes(obj, compact: bool = False) -> bytes:
    """Sorted JSON; indented for files people read and diff (goldens), else on one line: the
    indented form takes Python's slow encoder, which made a run's checkpoints of a hundred
    user models cost seconds (keras_parity/run/runner.py writes one after every model)."""
    text = json.dumps(obj, sort_keys=True) if compact else json.dumps(obj, indent=1, sort_keys=True)
    return (text + "\n").encode()


def file_bytes(path: Path, content) -> bytes:
    """What a golden file holds, by its suffix: arrays as .npz, anything else as sorted JSON."""
    return npz_bytes(content) if Path(path).suffix == ".npz" else json_bytes(content)


def write_json(path: Path, obj) -> bool:
    return _atomic_write(path, json_bytes(obj))


def _fix_hint(path: Path) -> str:
    return f"regenerate it with `nox -s golden` (a checked-in one: or `git checkout -- {path}`)"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise GoldenError(f"golden file {path} is missing", "create it with `nox -s golden`")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise GoldenError(f"golden file {path} is corrupt ({type(exc).__name__}: {exc})", _fix_hint(path)) from None


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise GoldenError(f"golden file {path} is missing", "create it with `nox -s golden`")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise GoldenError(f"golden file {path} is corrupt ({exc})", _fix_hint(path)) from None


def _malformed(path: Path, what: str) -> GoldenError:
    return GoldenError(f"golden file {path} is not a valid {path.name} ({what})", _fix_hint(path))


def read_reference_json(path: Path) -> dict:
    """reference.json, checked to be what `golden` writes: an object whose `builders` are objects."""
    recorded = read_json(path)
    if not isinstance(recorded, dict):
        raise _malformed(path, f"a JSON {type(recorded).__name__}, not an object")
    for key in ("builders", "inputs_sha256", "outputs", "reference"):
        value = recorded.get(key, {})
        if not isinstance(value, dict) or (key == "builders" and not all(isinstance(b, dict) for b in value.values())):
            raise _malformed(
                path, f"'{key}' is not an object of objects" if key == "builders" else f"'{key}' is not an object"
            )
    return recorded


def read_graph(path: Path) -> dict:
    """graph.json, checked to be what `golden` writes: each builder's config with its layers."""
    graph = read_json(path)
    if not isinstance(graph, dict):
        raise _malformed(path, f"a JSON {type(graph).__name__}, not an object")
    for name, b in graph.items():
        layers = (
            b.get("config", {}).get("layers") if isinstance(b, dict) and isinstance(b.get("config"), dict) else None
        )
        if not isinstance(layers, list) or not all(isinstance(x, dict) and "name" in x for x in layers):
            raise _malformed(path, f"'{name}' has no config with a list of layers")
    return graph


def reference_path(model: str, root: Path = GOLDEN) -> Path:
    return root / model / "reference.npz"


def layers_path(model: str, root: Path = GOLDEN) -> Path:
    """The float64 reference's layer sketches of every forward case (golden/sketch.py)."""
    return root / model / "layers.npz"


def weights_path(model: str, root: Path = GOLDEN) -> Path:
    """A saved model's weights as its goldens were made from (a .keras file's; built-in models'
    and builders' are drawn from their seed): what a later run's changed weights are named against."""
    return root / model / "weights.npz"


def graph_path(model: str, root: Path = GOLDEN) -> Path:
    return root / model / "graph.json"


def snapshot_path(model: str, platform: str, backend: str, root: Path = GOLDEN) -> Path:
    return root / model / "snapshots" / platform / f"{backend}.npz"


def write_run(out: Path, name: str, arrays: dict[str, np.ndarray], record_json: dict) -> None:
    """What a backend or twin process leaves for the launcher: <name>.npz, then <name>.json
    (the launcher reads a run as finished once its JSON exists)."""
    write_npz(Path(out) / f"{name}.npz", arrays)
    _atomic_write(Path(out) / f"{name}.json", json_bytes(record_json, compact=True))


def snapshot_identity(recorded: dict) -> dict:
    """The machine facts a snapshot's platform key was made from (keras_parity/run/machine.py),
    from its JSON or a run's metadata: the CPU identity with the ISA cap, or the GPU's."""
    if recorded.get("device") == "gpu" and recorded.get("gpu"):
        return {"arch": "gpu", **recorded["gpu"]}
    return {**(recorded.get("cpu") or {}), "isa_cap": recorded.get("isa_cap")}


def find_snapshot(model: str, platform: str, backend: str, identity: dict, root: Path = GOLDEN):
    """(path, 'same') for this platform's own snapshot; else (path, 'other-platform') for the
    nearest other platform's (same architecture, vendor, model, most shared ISA extensions),
    whose bits are not expected to match; else (None, 'missing')."""
    own = snapshot_path(model, platform, backend, root)
    if own.exists():
        return own, "same"
    others = sorted((root / model / "snapshots").glob(f"*/{backend}.npz"))
    if not others:
        return None, "missing"

    def closeness(path: Path):
        meta_file = path.with_suffix(".json")
        try:
            theirs = snapshot_identity(json.loads(meta_file.read_text())) if meta_file.exists() else {}
        except (ValueError, OSError):
            theirs = {}
        return machine.similarity(identity, theirs), path.parent.name

    return max(others, key=closeness), "other-platform"


def obtained_path(model: str, backend: str, root: Path = GOLDEN) -> Path:
    return root / model / f"{backend}.obtained.npz"


def write_obtained(obtained: Mapping[Path, dict[str, np.ndarray]]) -> None:
    """Each failing model and backend's obtained arrays to its file beside the goldens; the file
    of one with none (its cells pass) is removed, so a file left there is never stale."""
    for path, arrays in obtained.items():
        if arrays:
            write_npz(path, arrays)
        else:
            path.unlink(missing_ok=True)

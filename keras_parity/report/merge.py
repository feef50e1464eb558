"""`nox -s report`: one report from the result directories of several machines or jobs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.judge.compare import CellResult


class MergeError(UsageError):
    pass


def load_cells(results_dir: Path) -> tuple[list[CellResult], dict]:
    path = Path(results_dir) / "parity.json"
    if Path(results_dir).exists() and not Path(results_dir).is_dir():
        raise MergeError(
            f"{results_dir} is not a folder; point `nox -s report` at directories written by `nox -s parity`"
        )
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MergeError(
            f"{path} is missing; point `nox -s report` at directories written by `nox -s parity`"
        ) from None
    except OSError as exc:  # a folder where the file should be, or a file that cannot be read
        raise MergeError(f"{path} cannot be read ({exc.strerror}); rerun `nox -s parity` for that machine") from None
    except ValueError as exc:
        raise MergeError(f"{path} is not valid JSON ({exc}); rerun `nox -s parity` for that machine") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise MergeError(
            f"{path} holds no list of cells; point `nox -s report` at directories written by `nox -s parity`"
        )
    try:
        return [CellResult.from_dict(d) for d in doc["cells"]], doc.get("runs", {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MergeError(
            f"{path} has a cell that cannot be read ({type(exc).__name__}: {exc}); "
            "rerun `nox -s parity` for that machine"
        ) from None


def merge(dirs: list[Path]) -> tuple[list[CellResult], dict]:
    """Cells of every directory, each device labelled with the directory it came from."""
    cells, runs = [], {}
    for d in dirs:
        got, meta = load_cells(d)
        cells += [replace(c, device=f"{c.device} ({Path(d).name})") for c in got]
        runs[Path(d).name] = meta
    cells.sort(key=lambda c: (c.model, c.case, c.backend, c.device, c.path))
    return cells, runs

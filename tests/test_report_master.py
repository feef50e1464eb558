"""The report of a fixed run, byte for byte: the judge and the report on recorded runs.

tests/data/master/ holds the raw output of one real parity run (linear, bn_mlp and lstm on
the three backends and the torch-native twin, recorded with `nox -s parity -- --model linear
--model bn_mlp --model lstm --twins torch-native`) with two changes planted (jax's bn_mlp
inference output scaled by 1.001; torch's one linear/dense_nobias output removed), and a copy
of those models' goldens whose lstm snapshots are filed under another CPU's key, whose lstm
config hash differs from the run's (a note), and whose bn_mlp recorded Adam's default epsilon
as 1e-8 (a moved Keras default: a failure). The Keras defaults in the raw runs and the goldens
were added from a later run of the same releases. Judging it
must give the same cells, the same table and the same JUnit XML whatever the machine, and
whatever the modules look like inside: a change to the harness that alters them either is a
behaviour change (regenerate with KERAS_PARITY_REGEN_MASTER=1 and say why) or a bug.
"""

import json
import os
import re
import shutil
from pathlib import Path

from rich.console import Console

from keras_parity import report
from keras_parity.judge.evaluate import evaluate
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run.launch import load_run

BUILTIN = builtin_registry()

MASTER = Path(__file__).parent / "data" / "master"
MODELS = ["linear", "bn_mlp", "lstm"]
RUNS = {"tensorflow": False, "jax": False, "torch": False, "torch-native": True}


def _judged(tmp_path: Path) -> dict[str, str]:
    goldens = tmp_path / "golden"
    shutil.copytree(MASTER / "golden", goldens)  # messages name the goldens' folder: the same every run
    runs = {b: load_run(MASTER / "raw", b, twin=twin) for b, twin in RUNS.items()}
    cells = evaluate(runs, MODELS, BUILTIN, goldens)
    console = Console(record=True, width=200, color_system=None, force_terminal=False)
    report.print_report(cells, console, verbose=True)  # the full table, then the grid and the failures
    report.write_json(cells, {}, tmp_path / "parity.json")
    report.write_junit(cells, tmp_path / "parity.xml")
    text = console.export_text()
    # The temporary golden folder's path appears in messages: make it the same every run.
    return {
        "parity.json": (tmp_path / "parity.json").read_text().replace(str(goldens), "<golden>"),
        "parity.txt": text.replace(str(goldens), "<golden>"),
        "parity.xml": re.sub(r' (timestamp|hostname)="[^"]*"', "", (tmp_path / "parity.xml").read_text()).replace(
            str(goldens), "<golden>"
        ),
    }


def test_the_report_of_a_fixed_run_is_unchanged(tmp_path):
    got = _judged(tmp_path)
    if os.environ.get("KERAS_PARITY_REGEN_MASTER"):
        for name, text in got.items():
            (MASTER / name).write_text(text)
    for name, text in got.items():
        assert text == (MASTER / name).read_text(), f"{name} differs from tests/data/master/{name}"


def test_the_fixed_run_covers_what_the_report_shows():
    """The master is worth keeping only if it holds each kind of cell the report renders."""
    cells = json.loads((MASTER / "parity.json").read_text())["cells"]
    assert {c["status"] for c in cells} >= {"pass", "fail"}
    assert {c["snapshot"] for c in cells} >= {"identical", "changed", "other-platform"}
    assert any(c["backend"] == "torch-native" for c in cells)
    assert any(c["case"].startswith("train_") for c in cells)
    notes = [p for c in cells for p in c["problems"] if p.startswith("note: ")]
    assert any("model definition of" in n for n in notes)
    assert any(p.startswith("Keras default of Adam changed") for c in cells for p in c["problems"])

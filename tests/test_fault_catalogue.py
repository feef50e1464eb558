"""The fault catalogue and the campaign's arithmetic: what counts as touched, caught, escaped,
crashed, a false alarm and a right localization; every patch applies in every backend."""

import ast
import subprocess

import numpy as np
import pytest
from helpers import ROOT

from keras_parity import faults
from keras_parity.errors import UsageError
from keras_parity.faults import Cell, CleanRun, FaultResult, catalogue, show
from keras_parity.golden import write_npz
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import envs


def test_the_catalogue_has_thirty_faults_each_a_patch_that_parses():
    names = [f.name for f in catalogue.FAULTS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    for f in catalogue.FAULTS:
        ast.parse(f.patch())
        assert f.modeled_on and f.kind
    assert set(catalogue.CI_SLICE) <= set(names)


def test_an_unknown_fault_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="unknown fault 'nope'; choose from: dense-bias-dropped"):
        catalogue.named(["nope"])


def _result(*cells: Cell) -> FaultResult:
    return FaultResult(catalogue.FAULTS[0], cells, 1.0)


def test_a_fault_is_caught_only_when_every_cell_it_touched_fails():
    hit, missed, untouched = (
        Cell("m", "a", "jax", True, True),
        Cell("m", "b", "jax", True, False, ratio=0.4),
        Cell("m", "c", "jax", False, False),
    )
    assert _result(hit, untouched).caught
    r = _result(hit, missed, untouched)
    assert not r.caught and r.escaped == [missed] and r.beyond_bits == []
    assert not _result(untouched).caught and not _result(untouched).touched  # not exercised
    broken = Cell("m", "a", "jax", True, True, error="TypeError: patch")
    assert not _result(broken).caught and _result(broken).crashed == [broken]
    assert _result(Cell("m", "c", "jax", False, True)).beyond_bits  # failed with its bits unchanged


def test_the_summary_counts_recall_false_alarms_and_localization():
    right = Cell("m", "a", "jax", True, True, localized="conv", first_moved="conv")
    wrong = Cell("m", "a", "torch", True, True, localized="head", first_moved="conv")
    results = [  # a fault run's cell failing with its bits unchanged is not a false alarm
        _result(Cell("m", "z", "jax", False, True, problem="Keras default of Adam changed")),
        _result(right, wrong),
        _result(Cell("m", "b", "jax", True, False)),
        _result(Cell("m", "b", "jax", False, False)),
    ]
    runs = [CleanRun("native", (), 10, 1.0), CleanRun("foreign", ("m/a/jax/eager: fail",), 10, 1.0)]
    s = show.summary(results, runs, 60.0)
    assert (s.exercised, s.caught, s.recall) == (2, 1, 0.5)
    assert (s.false_alarms, s.clean_cells, s.beyond_bits) == (1, 20, 1)
    assert (s.localized, s.localized_right, s.localization) == (2, 1, 0.5)


def test_touched_and_the_first_moved_layer_come_from_the_bits(tmp_path):
    """The ground truth: a cell whose arrays changed at all, and the first layer (graph order)
    whose sketch changed, against the clean run."""
    campaign = faults.Campaign.__new__(faults.Campaign)
    campaign.order = {"m": {"a": ["dense_in", "bn", "relu", "dense_out"]}}
    clean, planted = tmp_path / "clean", tmp_path / "planted"
    out = {"m/a/eager/output": np.ones(3, np.float32), "m/b/eager/output": np.ones(2, np.float32)}
    sk = {f"m/a/{k}": np.full(4, i, float) for i, k in enumerate(["dense_in", "bn", "relu", "dense_out"])}
    for d, bump in ((clean, 0.0), (planted, 1e-7)):
        d.mkdir()
        write_npz(d / "jax.npz", {**out, "m/a/eager/output": out["m/a/eager/output"] + np.float32(bump)})
        write_npz(
            d / "jax.sketches.npz", {**sk, **{k: v + bump for k, v in sk.items() if k.endswith(("relu", "dense_out"))}}
        )
    campaign.baseline = clean
    assert campaign._moved(planted, "m", "a", "jax") == (True, "relu")
    assert campaign._moved(planted, "m", "b", "jax") == (False, None)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_patch_applies_on_every_backend(backend, tmp_path):
    """Each patch's top level runs after Keras is imported, as the runner runs it (one after
    another in one process: a patch only replaces attributes): a patch that cannot apply would
    crash every cell and count for nothing."""
    script = tmp_path / "apply.py"
    script.write_text(
        "import runpy, sys\nimport keras\nfor path in sys.argv[1:]:\n    runpy.run_path(path)\n"
        "print('applied', len(sys.argv) - 1)\n"
    )
    patches = []
    for f in catalogue.FAULTS:
        (tmp_path / f"{f.name}.py").write_text(f.patch())
        patches.append(str(tmp_path / f"{f.name}.py"))
    env = {"KERAS_BACKEND": backend, "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(envs.ensure(backend)), str(script), *patches], env=env, capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0 and f"applied {len(patches)}" in proc.stdout, proc.stderr[-2000:]


def test_a_rounding_control_must_pass_and_a_cell_it_fails_is_a_false_alarm():
    control = next(f for f in catalogue.FAULTS if f.rounding)
    quiet = FaultResult(control, (Cell("m", "a", "jax", True, False),), 1.0)
    loud = FaultResult(control, (Cell("m", "a", "jax", True, True, problem="output: relative L2 error"),), 1.0)
    runs = [CleanRun("native", (), 10, 1.0)]
    s = show.summary([quiet], runs, 1.0)
    assert (s.exercised, s.false_alarms, s.controls, s.controls_passed, s.clean_cells) == (0, 0, 1, 1, 11)
    s = show.summary([loud], runs, 1.0)
    assert (s.false_alarms, s.controls_passed) == (1, 0) and loud.cried_wolf == list(loud.cells)
    assert "passed, as rounding should" in show.progress_line(quiet, 1, 1)

"""A user's mistakes refused before any backend starts, in one line with exit 2: inputs that do
not match the model or hold NaN, values no run can use, model names that would leave the golden
folder, paths relative to where the command was started; and those only a backend process finds
(a custom objects module that raises) exit 2 too."""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_parity import cli
from keras_parity.commands import arguments, catalog
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.judge.compare import USAGE, CellResult, CellStatus, Finding
from keras_parity.paths import GOLDEN
from keras_parity.registry import userload, usermodel
from keras_parity.registry.select import select_models
from keras_parity.run.settings import TIME_LIMIT_ENV

IMAGE = np.linspace(-1, 1, 2 * 8 * 8, dtype="float32").reshape(2, 8, 8, 1)


def _keras_file(path: Path, inputs=(("image", [None, 8, 8, 1], "float32"),), config: str | None = None) -> Path:
    """An archive shaped as model.save() writes one: a functional config.json with its InputLayers."""
    layers = [
        {"class_name": "InputLayer", "config": {"batch_shape": shape, "dtype": dtype, "name": name}}
        for name, shape, dtype in inputs
    ]
    layers.append({"class_name": "Dense", "config": {"name": "dense"}})
    body = {"class_name": "Functional", "config": {"input_layers": [[n, 0, 0] for n, _, _ in inputs], "layers": layers}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(body) if config is None else config)
        zf.writestr("model.weights.h5", b"")
    return path


class BackendStarted(Exception):
    """What a test sees instead of a backend process: every refusal here comes before one."""


@pytest.fixture(autouse=True)
def no_backend(monkeypatch):
    from keras_parity.run import launch

    def refuse(*args, **kw):
        raise BackendStarted("a backend process was started")

    monkeypatch.setattr(launch, "run_backends", refuse)


def _golden_tree() -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in GOLDEN.rglob("*") if p.is_file()}


def _refused(capsys, tmp_path, *args, command="parity") -> str:
    """Runs the command in-process; asserts exit 2, one line, no traceback, nothing written."""
    before = _golden_tree()
    code = cli.main([command, *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == Exit.USAGE, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "golden").exists()
    assert _golden_tree() == before
    return err


@pytest.fixture
def model(tmp_path) -> Path:
    return _keras_file(tmp_path / "shapes.keras")


# --- inputs: finite values, names, shapes and dtypes against the model's config ------------------


@pytest.mark.parametrize("command", ["parity", "golden"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_inputs_are_refused_before_any_backend(capsys, tmp_path, model, command, bad):
    np.savez(tmp_path / "in.npz", image=np.full_like(IMAGE, bad))
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--inputs", str(tmp_path / "in.npz"), command=command)
    assert "'image' holds" in err and "save finite inputs, or pass --allow-nonfinite" in err


def test_allow_nonfinite_lets_them_through(tmp_path, model):
    np.savez(tmp_path / "in.npz", image=np.where(IMAGE > 0, np.nan, IMAGE))
    args = catalog.parser().parse_args(
        ["parity", "--model-file", str(model), "--inputs", str(tmp_path / "in.npz"), "--allow-nonfinite"]
    )
    assert select_models(args).models == ["shapes"]


def test_integer_inputs_need_no_finite_check(tmp_path):
    model = _keras_file(tmp_path / "tokens.keras", (("ids", [None, 5], "int32"),))
    np.savez(tmp_path / "in.npz", ids=np.arange(10, dtype="int32").reshape(2, 5))
    args = catalog.parser().parse_args(["parity", "--model-file", str(model), "--inputs", str(tmp_path / "in.npz")])
    assert select_models(args).models == ["tokens"]


@pytest.mark.parametrize(
    "arrays, says",
    [
        ({"image": IMAGE[:, :4]}, "'image' has shape (2, 4, 8, 1) but shapes takes (None, 8, 8, 1)"),
        ({"image": IMAGE[0]}, "'image' has shape (8, 8, 1) but shapes takes (None, 8, 8, 1)"),
        ({"image": IMAGE.astype("int32")}, "'image' is int32 but shapes takes float32; save it with .astype"),
        ({"image": IMAGE, "mask": IMAGE}, "holds ['image', 'mask'] but shapes takes inputs ['image']"),
    ],
    ids=["shape", "rank", "dtype", "names"],
)
def test_inputs_that_do_not_match_the_saved_model(capsys, tmp_path, model, arrays, says):
    np.savez(tmp_path / "in.npz", **arrays)
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--inputs", str(tmp_path / "in.npz"))
    assert says in err, err


def test_several_inputs_are_checked_by_name(capsys, tmp_path):
    two = (("image", [None, 8, 8, 1], "float32"), ("scale", [None, 1], "float32"))
    model = _keras_file(tmp_path / "two.keras", two)
    np.savez(tmp_path / "in.npz", image=IMAGE, size=np.ones((2, 1), "float32"))
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--inputs", str(tmp_path / "in.npz"))
    assert "holds ['image', 'size'] but two takes inputs ['image', 'scale']" in err
    np.savez(tmp_path / "in.npz", image=IMAGE, scale=np.ones((3, 1), "float32"))
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--inputs", str(tmp_path / "in.npz"))
    assert "'scale' has batch 3, the other inputs 2; use one batch" in err


def test_a_config_json_that_is_not_json_is_a_damaged_file(capsys, tmp_path):
    model = _keras_file(tmp_path / "m.keras", config="{not json")
    err = _refused(capsys, tmp_path, "--model-file", str(model))
    assert "damaged .keras archive (its config.json is not a JSON object" in err and "save the model again" in err
    assert "own code" not in err


# --- values no run can use ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "0", "-5", "inf"])
def test_a_time_limit_that_is_not_a_duration(capsys, tmp_path, value):
    err = _refused(capsys, tmp_path, "--model", "linear", "--time-limit", value)
    assert "is not a duration; give seconds above 0" in err


@pytest.mark.parametrize("value", ["abc", "nan", "0", "-1"])
@pytest.mark.parametrize("command", ["parity", "golden", "localize"])
def test_a_time_limit_variable_that_is_not_a_duration(capsys, tmp_path, monkeypatch, value, command):
    monkeypatch.setenv(TIME_LIMIT_ENV, value)
    err = _refused(capsys, tmp_path, "--model", "linear", command=command)
    assert f"{TIME_LIMIT_ENV}={value}:" in err and "give seconds above 0, e.g. 1800" in err


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_a_tolerance_no_cell_can_meet(capsys, tmp_path, model, value):
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--rel-l2", value)
    assert "can never pass; give a tolerance above 0" in err


@pytest.mark.parametrize("value", ["", "my layers", "mylayers.py", "../x"])
def test_custom_objects_that_is_not_a_module_name(capsys, tmp_path, model, value):
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--custom-objects", value)
    assert f"--custom-objects '{value}' is not a module name; give " in err
    if value.endswith(".py"):
        assert err.rstrip().endswith("give the module, e.g. --custom-objects mylayers")


def test_a_golden_dir_that_does_not_exist(capsys, tmp_path, model):
    missing = tmp_path / "nowhere"
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--golden-dir", str(missing))
    assert f"--golden-dir {missing} does not exist" in err
    (tmp_path / "afile").write_text("")
    err = _refused(capsys, tmp_path, "--model-file", str(model), "--golden-dir", str(tmp_path / "afile"))
    assert "is a file; pass the folder that holds the goldens" in err
    # `golden` makes the folder: no refusal there.
    args = catalog.parser().parse_args(["golden", "--model-file", str(model), "--golden-dir", str(missing)])
    assert select_models(args).models == ["shapes"]


# --- model names from file names ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["...keras", "drift.keras", "Drift.keras", ".hidden.keras"])
def test_a_file_name_that_would_leave_or_take_over_the_golden_folder(capsys, tmp_path, name):
    model = _keras_file(tmp_path / name)
    err = _refused(capsys, tmp_path, "--model-file", str(model))
    assert f"model file {model} would name its golden folder" in err and "rename the file" in err


def test_a_file_name_is_made_a_plain_folder_name(tmp_path):
    model = _keras_file(tmp_path / "my model (v2).keras")
    args = catalog.parser().parse_args(["parity", "--model-file", str(model)])
    selection = select_models(args)
    assert selection.models == ["my_model__v2_"]
    source = selection.registry["my_model__v2_"].source
    assert Path(source.golden) == tmp_path / "golden" and source.target == str(model)


# --- user paths are the user's, wherever the backend processes start ---------------------------


def test_every_user_path_is_made_absolute_against_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(arguments, "RESULTS", Path("results"))  # an installed package's default
    rel = ["--model-file", "m.keras", "--inputs", "in.npz", "--golden-dir", "g"]
    args = catalog.parser().parse_args(["parity", *rel])
    assert args.out == tmp_path / "results"
    assert args.model_file == [tmp_path / "m.keras"] and args.inputs == tmp_path / "in.npz"
    assert args.golden_dir == tmp_path / "g"
    for command in ("golden", "repro", "bench", "localize", "zoo", "drift", "noise", "growth"):
        assert catalog.parser().parse_args([command, "--out", "r"]).out == tmp_path / "r", command


# --- mistakes only a backend process can find ---------------------------------------------------


def _source(tmp_path, module: str) -> usermodel.Source:
    return usermodel.Source("m", "builder", "x:y", str(tmp_path), custom_objects=module, cwd=str(tmp_path))


def test_a_custom_objects_module_that_raises_says_so(tmp_path, monkeypatch):
    (tmp_path / "raising_layers.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "needs_more.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(usermodel.UserModelError) as raised:
        userload._import_custom(_source(tmp_path, "raising_layers"))
    assert str(raised.value) == (
        "custom objects module 'raising_layers' raised on import (RuntimeError: boom at import); fix the module"
    )
    with pytest.raises(usermodel.UserModelError, match="'needs_more' raised on import .ModuleNotFoundError"):
        userload._import_custom(_source(tmp_path, "needs_more"))
    with pytest.raises(usermodel.UserModelError, match="'absent_layers' is not found from .*run from the folder"):
        userload._import_custom(_source(tmp_path, "absent_layers"))


def test_a_users_mistake_in_a_backend_exits_2_not_3():
    usage = CellResult("m", "*", "jax", "cpu", "*", CellStatus.ERROR, (Finding(USAGE, "in.npz holds ['x']"),))
    crash = CellResult("m", "*", "torch", "cpu", "*", CellStatus.ERROR, (Finding("backend", "exited -9"),))
    fine = CellResult("m", "inference", "tensorflow", "cpu", "predict")
    assert usage.verdict == "usage" and crash.verdict == "error" and fine.verdict == "pass"
    assert from_verdicts(c.verdict for c in (usage, fine)) == Exit.USAGE
    assert from_verdicts(c.verdict for c in (usage, crash, fine)) == Exit.INFRA
    assert from_verdicts(["usage", "fail"]) == Exit.REGRESSION


def test_the_runner_marks_a_users_mistake_and_the_judge_keeps_it(tmp_path, monkeypatch):
    from keras_parity.judge import evaluate
    from keras_parity.run import runner
    from keras_parity.run.flags import RunFlags
    from keras_parity.run.record import BackendRun

    def refuse(spec, *args, **kw):
        raise usermodel.UserModelError("in.npz: 'x' has shape (2, 3) but m takes (None, 4)")

    monkeypatch.setattr(runner, "run_model", refuse)
    spec = usermodel.spec(_source(tmp_path, "mylayers"))
    run = BackendRun("jax")
    runner._run_models({"m": spec}, RunFlags(), {}, None, run)
    assert run.usage_errors == ["m"] and "has shape (2, 3)" in run.errors["m"]
    (cell,) = evaluate.judge_backend(evaluate.Goldens("m", spec, tmp_path), "jax", {"jax": run})
    assert cell.status == CellStatus.ERROR and cell.verdict == "usage"
    assert cell.problems == ["jax failed on m: in.npz: 'x' has shape (2, 3) but m takes (None, 4)"]


@pytest.mark.parametrize("value", [float("nan"), 0.0], ids=["nan", "zero"])
def test_a_layer_profile_with_nothing_to_log_scale_still_plots(tmp_path, value):
    """Every layer at NaN (inputs let through with --allow-nonfinite) or at 0 has no value a log
    scale can show: the plot keeps a linear one instead of raising 'Data cannot be log-scaled'."""
    from keras_parity.diagnose.localize import LayerError, plot

    rows = [LayerError(f"dense_{i}", "Dense", value, value, value) for i in range(3)]
    out = plot(rows, None, "m/inference on jax", tmp_path / "m.png")
    assert out.stat().st_size > 0


def test_golden_exits_2_when_a_backend_finds_the_users_mistake(tmp_path, monkeypatch, capsys):
    from keras_parity.run import launch
    from keras_parity.run.record import BackendRun

    said = "custom objects module 'raising_layers' raised on import (RuntimeError: boom); fix the module"

    def recorded(*args, **kw):
        return {"jax": BackendRun("jax", errors={"tiny.build": said}, usage_errors=["tiny.build"])}

    monkeypatch.setattr(launch, "run_backends", recorded)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["golden", "--model", "tiny:build", "--backend", "jax", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == Exit.USAGE and said in out, out
    assert not (tmp_path / "golden" / "tiny.build").exists()

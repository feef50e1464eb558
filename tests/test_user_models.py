"""Your own models end to end: saved .keras files no code here defines, builders by import
path, custom layers, and every bad input of the issue, through the real command line and
real backend processes."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, cli

from keras_parity.run import envs

EXAMPLE = ROOT / "examples" / "shapes"
pytestmark = pytest.mark.slow


def _backend_python(backend: str) -> str:
    return str(envs.ensure(backend))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's folder: models saved by Keras itself (tests/data/user_project.py), a custom
    layer module, builders and inputs."""
    out = tmp_path_factory.mktemp("user")
    env = {"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [_backend_python("tensorflow"), str(ROOT / "tests/data/user_project.py"), str(out)], env=env, check=True
    )
    return out


def _tree_digest(folder: Path) -> dict[str, str]:
    """Every golden file's sha256 (obtained files, written beside on a mismatch, excluded)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".obtained.npz")
    }


def _cells(out: Path) -> list[dict]:
    return json.loads((out / "parity.json").read_text())["cells"]


def test_example_model_passes_on_all_backends_and_leaves_its_goldens_alone(tmp_path):
    before = _tree_digest(EXAMPLE / "golden")
    out = tmp_path / "out"
    proc = cli(
        "parity",
        "--model-file",
        str(EXAMPLE / "shapes.keras"),
        "--inputs",
        str(EXAMPLE / "inputs.npz"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = _cells(out)
    assert {c["backend"] for c in cells} == {"tensorflow", "jax", "torch"}
    assert all(c["status"] == "pass" and c["model"] == "shapes" and c["reference"] == "float64" for c in cells)
    assert _tree_digest(EXAMPLE / "golden") == before


def test_one_changed_weight_fails_naming_the_model(project, tmp_path):
    """The example's file with one weight moved by 0.25 (a bias of the last layer), checked
    against its goldens."""
    planted = tmp_path / "shapes.keras"
    code = (
        "import keras, sys; m = keras.saving.load_model(sys.argv[1]); b = m.get_layer('logits').bias; "
        "v = keras.ops.convert_to_numpy(b).copy(); v[1] += 0.25; b.assign(v); m.save(sys.argv[2])"
    )
    env = {"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [_backend_python("jax"), "-c", code, str(EXAMPLE / "shapes.keras"), str(planted)], env=env, check=True
    )
    goldens = tmp_path / "golden"
    shutil.copytree(EXAMPLE / "golden", goldens)
    before = _tree_digest(goldens)
    out = tmp_path / "out"
    proc = cli(
        "parity",
        "--model-file",
        str(planted),
        "--inputs",
        str(EXAMPLE / "inputs.npz"),
        "--golden-dir",
        str(goldens),
        "--out",
        str(out),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cells = _cells(out)
    assert {c["backend"] for c in cells} == {"tensorflow", "jax", "torch"}
    assert all(c["status"] == "fail" and c["model"] == "shapes" for c in cells)
    # Named variable by variable against the weights the goldens keep (weights.npz), not by checksum.
    assert all(
        any("weights changed since the goldens: logits/bias by rel L2" in p for p in c["problems"]) for c in cells
    )
    row = next(line for line in proc.stdout.splitlines() if "shapes/inference" in line and "│" in line)
    assert row.count("weights changed") == 3, row  # the grid says what it is, not "FAIL 0.15x"
    assert all(any("relative L2 error" in p for p in c["problems"]) for c in cells)  # the numbers moved too
    assert "FAIL shapes/inference" in proc.stdout
    assert _tree_digest(goldens) == before  # nothing overwritten without `golden`
    assert sorted(p.name for p in (goldens / "shapes").glob("*.obtained.npz")) == [
        "jax.obtained.npz",
        "tensorflow.obtained.npz",
        "torch.obtained.npz",
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--model-file", "missing.keras"], "does not exist; pass the path of a .keras file"),
        (["--model-file", "broken.keras"], "is not a readable .keras archive"),
        (["--model-file", "legacy.h5"], "is a Keras 2 HDF5 file; load it with keras.saving.load_model()"),
        (["--model-file", "saved_model"], "is a TensorFlow SavedModel (Keras 2 / tf.keras)"),
        (["--model-file", "seq.keras", "--inputs", "mylayers.py"], "is not an .npz archive"),
        (["--model-file", "seq.keras", "--inputs", "none.npz"], "/none.npz does not exist"),  # its absolute path
        (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    ],
    ids=["missing", "corrupt", "keras2-h5", "savedmodel", "inputs-not-npz", "inputs-missing", "unknown-model"],
)
def test_bad_files_stop_before_any_backend_runs(project, tmp_path, args, says):
    proc = cli("parity", *args, "--out", str(tmp_path / "out"), cwd=project)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: ") and says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()
    assert not (project / "golden").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--inputs", "seq_wrong_shape.npz"], "'input_layer' has shape (5, 7) but seq takes (None, 6)"),
        (["--inputs", "seq_wrong_dtype.npz"], "'input_layer' is int32 but seq takes float32; save it with"),
    ],
    ids=["shape", "dtype"],
)
def test_inputs_that_do_not_match_the_model(project, tmp_path, args, says):
    """Checked against the inputs the file's config declares, before any backend starts."""
    out = tmp_path / "out"
    proc = cli("parity", "--model-file", "seq.keras", *args, "--backend", "jax", "--out", str(out), cwd=project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: {Path(args[1]).name}: ") and says in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists()


def test_one_array_feeds_a_one_input_model_whatever_its_name_and_says_so(project, tmp_path):
    goldens = ["--golden-dir", str(tmp_path / "golden"), "--inputs", "seq_wrong_name.npz", "--backend", "jax"]
    proc = cli("golden", "--model-file", "seq.keras", *goldens, "--out", str(tmp_path / "g"), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    note = "note: seq_wrong_name.npz: its one array 'features' feeds seq's input 'input_layer'"
    assert proc.stdout.splitlines().count(note) == 1, proc.stdout


def test_custom_layer_not_found_names_it_and_the_flag(project, tmp_path):
    out = tmp_path / "out"
    proc = cli("parity", "--model-file", "custom.keras", "--backend", "torch", "--out", str(out), cwd=project)
    assert proc.returncode == 2  # an ERROR cell the user fixes with an option: a usage error
    (cell,) = _cells(out)
    assert "uses class 'Doubler', which is not registered; pass --custom-objects MODULE" in cell["problems"][0]


def test_a_custom_objects_module_that_raises_is_the_users_to_fix(tmp_path):
    """The module is imported in the backend process only; its exception is the user's: exit 2,
    its exception line named, no advice about the folder it is run from."""
    (tmp_path / "tiny_builders.py").write_text(
        "import keras\n\n\ndef build():\n    x = keras.Input((3,), name='x')\n"
        "    return keras.Model(x, keras.layers.Dense(2, name='d')(x))\n"
    )
    (tmp_path / "raising_layers.py").write_text("raise RuntimeError('boom at import')\n")
    args = ("--model", "tiny_builders:build", "--custom-objects", "raising_layers", "--backend", "jax")
    proc = cli("parity", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (cell,) = _cells(tmp_path / "out")
    says = "custom objects module 'raising_layers' raised on import (RuntimeError: boom at import); fix the module"
    assert cell["status"] == "error" and says in cell["problems"][0], cell
    assert "run from the folder" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_layers_without_a_reference_fall_back_to_cross_backend_and_still_catch_a_change(project, tmp_path):
    goldens, common = tmp_path / "golden", ["--custom-objects", "mylayers", "--golden-dir", str(tmp_path / "golden")]
    made = cli("golden", "--model-file", "custom.keras", *common, "--out", str(tmp_path / "g"), cwd=project)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "no float64 reference (user>Doubler): judged across backends" in made.stdout
    meta = json.loads((goldens / "custom" / "reference.json").read_text())
    assert meta["reference"] == {"kind": "cross-backend", "missing": ["user>Doubler"]}

    out = tmp_path / "out"
    proc = cli("parity", "--model-file", "custom.keras", *common, "--out", str(out), cwd=project)
    assert proc.returncode == 0, proc.stdout
    cells = _cells(out)
    assert len(cells) == 5 and all(c["status"] == "pass" and c["reference"] == "cross-backend" for c in cells)
    assert all(c["snapshot"] == "identical" for c in cells)
    note = "note: cross-backend fallback: no float64 reference for user>Doubler; judged against"
    assert all(any(p.startswith(note) for p in c["problems"]) for c in cells)
    assert "[cross-backend]" in proc.stdout

    # One value of the custom layer's offset moved (a uniform shift would vanish in
    # LayerNormalization), on every backend alike: the backends still agree, the snapshots do not.
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); import keras, mylayers; "
        "m = keras.saving.load_model(sys.argv[1]); o = m.get_layer('doubler').offset; "
        "v = keras.ops.convert_to_numpy(o).copy(); v[0] += 0.5; o.assign(v); m.save(sys.argv[2])"
    )
    moved = project / "moved" / "custom.keras"
    moved.parent.mkdir(exist_ok=True)
    env = {"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [_backend_python("jax"), "-c", code, "custom.keras", str(moved), str(project)], env=env, check=True, cwd=project
    )
    out = tmp_path / "out2"
    proc = cli("parity", "--model-file", str(moved), *common, "--out", str(out), cwd=project)
    assert proc.returncode == 1
    for c in _cells(out):
        fails = [p for p in c["problems"] if not p.startswith("note:")]
        assert c["status"] == "fail" and any(p.startswith("vs its snapshot: output: relative L2") for p in fails), c
        assert not any(p.startswith(("vs tensorflow", "vs jax", "vs torch")) for p in fails), c


def test_builder_that_fails_on_one_backend_leaves_the_others_running(project, tmp_path):
    goldens = ["--golden-dir", str(tmp_path / "golden")]
    made = cli("golden", "--model", "mybuilders:fails_on_torch", *goldens, "--out", str(tmp_path / "g"), cwd=project)
    assert made.returncode == 1
    assert "torch failed on mybuilders.fails_on_torch: NotImplementedError" in made.stdout
    assert (tmp_path / "golden" / "mybuilders.fails_on_torch" / "reference.npz").exists()
    out = tmp_path / "out"
    proc = cli("parity", "--model", "mybuilders:fails_on_torch", *goldens, "--out", str(out), cwd=project)
    assert proc.returncode == 3  # ERROR cells: the model did not run there
    by_backend = {}
    for c in _cells(out):
        by_backend.setdefault(c["backend"], set()).add(c["status"])
    assert by_backend == {"tensorflow": {"pass"}, "jax": {"pass"}, "torch": {"error"}}
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR"))
    assert "this model does not build on torch (raised by the model's own code on torch; fix it there)" in line


def test_sequential_model_with_inputs_gets_the_float64_reference(project, tmp_path):
    goldens = ["--golden-dir", str(tmp_path / "golden"), "--inputs", "seq_inputs.npz", "--backend", "jax"]
    assert (
        cli("golden", "--model-file", "seq.keras", *goldens, "--out", str(tmp_path / "g"), cwd=project).returncode == 0
    )
    out = tmp_path / "out"
    proc = cli("parity", "--model-file", "seq.keras", *goldens, "--out", str(out), cwd=project)
    assert proc.returncode == 0, proc.stdout
    cells = _cells(out)
    assert {c["reference"] for c in cells} == {"float64"} and all(c["status"] == "pass" for c in cells)
    assert max(m["rel_l2"] for c in cells for m in c["outputs"].values()) < 1e-6


def test_builder_in_a_package_named_models_loads(tmp_path):
    """The suite's own models live in keras_parity.models: a user package called `models`
    (the usual name) is the user's, in the CLI and in every backend process."""
    pkg = tmp_path / "proj" / "models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(
        "import keras\n\n\ndef build():\n"
        "    x = keras.Input((3,), name='x')\n"
        "    return keras.Model(x, keras.layers.Dense(2, name='d')(x))\n"
    )
    goldens = ["--golden-dir", str(tmp_path / "golden"), "--backend", "jax", "--backend", "torch"]
    made = cli("golden", "--model", "models.tiny:build", *goldens, "--out", str(tmp_path / "g"), cwd=pkg.parent)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    proc = cli("parity", "--model", "models.tiny:build", *goldens, "--out", str(tmp_path / "o"), cwd=pkg.parent)
    assert proc.returncode == 0, proc.stdout[-2000:]
    cells = _cells(tmp_path / "o")
    assert {c["model"] for c in cells} == {"models.tiny.build"} and all(c["status"] == "pass" for c in cells)
    assert {c["reference"] for c in cells} == {"float64"}


NORMALIZED = """import keras


def build():
    x = keras.Input((6,), name="x")
    y = keras.layers.Normalization(axis=-1, name="norm")(x)
    y = keras.layers.Dense(8, activation="gelu", name="hidden")(y)
    return keras.Model(x, keras.layers.Dense(3, name="out")(y))
"""


@pytest.mark.slow
def test_a_model_with_normalization_built_in_code_meets_its_float64_reference(tmp_path):
    """Its seeded statistics reach Keras (set_weights alone would leave Normalization at mean 0,
    variance 1, while the reference reads the weights) on every backend."""
    (tmp_path / "norm.py").write_text(NORMALIZED)
    args = ["--model", "norm:build", "--golden-dir", str(tmp_path / "golden")]
    made = cli("golden", *args, "--out", str(tmp_path / "g"), cwd=tmp_path)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    assert "judged across backends" not in made.stdout
    proc = cli("parity", *args, "--out", str(tmp_path / "p"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    cells = json.loads((tmp_path / "p" / "parity.json").read_text())["cells"]
    assert len(cells) == 5 and all(c["status"] == "pass" and c["reference"] == "float64" for c in cells), cells


def test_a_backend_over_its_time_limit_is_an_error_naming_the_model(tmp_path):
    """A hung backend process (here a builder that never returns) is stopped at the time limit
    and reported as an ERROR naming the backend and the model it was on; nothing hangs."""
    (tmp_path / "slow_models.py").write_text("import time\n\n\ndef hang():\n    time.sleep(600)\n")
    args = ("--model", "slow_models:hang", "--backend", "jax", "--time-limit", "10", "--out", str(tmp_path / "out"))
    proc = cli("parity", *args, cwd=tmp_path)
    assert proc.returncode == 3  # an infrastructure error, not a regression
    (cell,) = _cells(tmp_path / "out")
    assert cell["status"] == "error", cell
    assert "jax did not finish within 10 s (it was on slow_models.hang)" in cell["problems"][0], cell


_CONV_LSTM = """
import sys, numpy as np, keras
from keras import layers as L
out = sys.argv[1]
rng = np.random.default_rng(0)
m = keras.Sequential([keras.Input((12, 3)), L.Conv1D(8, 3, activation="relu", name="conv"), L.LSTM(6, name="lstm"),
                      L.Dense(1, name="out")])
m.compile("adam", "mse")
x = rng.standard_normal((16, 12, 3)).astype("float32")
m.fit(x, rng.standard_normal((16, 1)).astype("float32"), epochs=1, verbose=0)  # trained, as users save them
m.save(f"{out}/convlstm.keras"); np.savez(f"{out}/inputs.npz", x=x[:4])
k = m.get_layer("lstm").cell.kernel
k.assign(keras.ops.convert_to_numpy(k) * 1.001)  # the whole LSTM kernel scaled: the output moves ~1e-3
m.save(f"{out}/changed/convlstm.keras")
"""


def test_a_saved_model_whose_weights_changed_is_diagnosed_as_a_built_in_one(tmp_path):
    """A trained Conv1D + LSTM file (float32 dtype policy inside) whose LSTM kernel moved by 1e-3:
    the grid says the weights changed and the line names the variable, the float64 run classifies
    it (the file is rebuilt in float64), the layer profile blames the LSTM against the goldens'
    own weights, and repro refuses to present the change as a backend's."""
    (tmp_path / "changed").mkdir()
    env = {"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([_backend_python("tensorflow"), "-c", _CONV_LSTM, str(tmp_path)], env=env, check=True)
    args = ["--inputs", str(tmp_path / "inputs.npz"), "--golden-dir", str(tmp_path / "golden")]
    made = cli("golden", "--model-file", str(tmp_path / "convlstm.keras"), *args, "--out", str(tmp_path / "g"))
    assert made.returncode == 0, made.stdout + made.stderr
    assert (tmp_path / "golden" / "convlstm" / "weights.npz").exists()

    changed = ["--model-file", str(tmp_path / "changed" / "convlstm.keras"), *args]
    proc = cli("parity", *changed, "--out", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "convlstm/inference" in line and "│" in line)
    assert row.count("weights changed") == 3, row
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL convlstm/inference")]
    assert len(fails) == 3, proc.stdout
    for line in fails:
        assert "weights changed since the goldens: lstm/lstm_cell/kernel by rel L2 1.0e-03" in line, line
        assert "first divergent layer 'lstm' (LSTM)" in line, line
        assert "semantic: the float64 run departs too" in line, line  # not "float64 not honoured"

    local = cli("localize", *changed, "--backend", "jax", "--out", str(tmp_path / "loc"))
    assert local.returncode == 0, local.stdout + local.stderr
    assert "first divergent layer 'lstm' (LSTM)" in local.stdout, local.stdout  # against the goldens' weights

    repro = cli("repro", *changed, "--backend", "jax", "--out", str(tmp_path / "repro"))
    assert repro.returncode == 2, repro.stdout + repro.stderr
    assert "are not the ones its goldens were made from" in repro.stderr
    assert not (tmp_path / "repro" / "convlstm-inference-jax").exists()


_WRAPPED = """
import sys, numpy as np, keras
from keras import layers as L
out = sys.argv[1]
# The issue's model: Conv1D + MaxPooling1D + Bidirectional(GRU) + Dropout + sigmoid, saved by model.save().
seq = keras.Sequential([keras.Input((12, 3)), L.Conv1D(8, 3, activation="relu"), L.MaxPooling1D(2),
                        L.Bidirectional(L.GRU(6), name="bigru"), L.Dropout(0.3), L.Dense(1, activation="sigmoid")])
seq.save(f"{out}/bigru.keras")
# A TimeDistributed Dense, a nested Sequential block and a nested functional block, whose Dense
# layers a loaded file names 'dense/kernel' alike (v.path), beside a top-level 'dense'.
x = keras.Input((10, 4))
h = L.TimeDistributed(L.Dense(5), name="td")(x)
h = keras.Sequential([L.Dense(6, activation="relu"), L.Dense(5)], name="seqblk")(h)
h = L.Dense(6, name="dense")(L.GlobalAveragePooling1D()(h))
i = keras.Input((6,))
block = keras.Model(i, L.Dense(3, activation="tanh")(i), name="fblock")
keras.Model(x, L.Dense(2)(block(h))).save(f"{out}/nested.keras")
"""


def test_wrapped_and_nested_layers_from_a_saved_file_get_a_float64_reference_and_pass(tmp_path):
    env = {"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([_backend_python("tensorflow"), "-c", _WRAPPED, str(tmp_path)], env=env, check=True)
    models = ["--model-file", str(tmp_path / "bigru.keras"), "--model-file", str(tmp_path / "nested.keras")]
    args = [*models, "--golden-dir", str(tmp_path / "golden")]
    made = cli("golden", *args, "--out", str(tmp_path / "g"))
    assert made.returncode == 0, made.stdout + made.stderr
    for name in ("bigru", "nested"):
        meta = json.loads((tmp_path / "golden" / name / "reference.json").read_text())
        assert meta["reference"] == {"kind": "float64"}, meta["reference"]
    proc = cli("parity", *args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = _cells(tmp_path / "out")
    assert {(c["model"], c["backend"]) for c in cells} == {
        (m, b) for m in ("bigru", "nested") for b in ("tensorflow", "jax", "torch")
    }
    assert all(c["status"] == "pass" and c["reference"] == "float64" for c in cells)

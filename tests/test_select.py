"""The models a command runs: chosen once from its options, without touching them or any other
command's, and the built-in model files imported under one name in the harness and the runners."""

import argparse
import copy
import importlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from helpers import ROOT

from keras_parity import paths
from keras_parity.errors import UsageError
from keras_parity.registry import usermodel
from keras_parity.registry.builtin import builtin_registry, model_module
from keras_parity.registry.select import runner_registry, select_models


def options(**given) -> argparse.Namespace:
    """The model options of a command (options.model_arguments), none given unless named."""
    base = {"model": None, "model_file": None, "inputs": None, "custom_objects": None, "golden_dir": None}
    return argparse.Namespace(**(base | {"rel_l2": None} | given))


def keras_file(path):
    """A file check_model_file accepts (an archive with a config.json); Keras never opens it here."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    return path


def test_builtin_models_by_default_with_the_suites_goldens():
    chosen = select_models(options())
    assert chosen.models == builtin_registry().builtin and chosen.golden_dir == paths.GOLDEN
    assert select_models(options(model=["lstm", "cnn", "lstm"])).models == ["lstm", "cnn"]


def test_select_models_leaves_its_options_as_given(tmp_path):
    args = options(model=["linear", "pkg.mod:build"], model_file=[keras_file(tmp_path / "net.keras")], rel_l2=1e-3)
    before = copy.deepcopy(vars(args))
    chosen = select_models(args)
    assert vars(args) == before
    assert chosen.models == ["linear", "net", "pkg.mod.build"]
    assert chosen.registry["net"].source.golden == str(tmp_path / "golden")
    assert chosen.registry["pkg.mod.build"].tol.rel_l2 == 1e-3


def test_two_selections_do_not_see_each_others_user_models():
    first = select_models(options(model=["first.mod:build"]))
    second = select_models(options(model=["second.mod:build"]))
    assert "first.mod.build" in first.registry and "second.mod.build" not in first.registry
    assert "second.mod.build" in second.registry and "first.mod.build" not in second.registry
    assert not [m for m in builtin_registry() if builtin_registry()[m].source]
    assert first.models == ["first.mod.build"] and second.models == ["second.mod.build"]


def test_bad_model_options_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown model 'nosuch'; choose from: linear"):
        select_models(options(model=["nosuch"]))
    with pytest.raises(UsageError, match="does not exist"):
        select_models(options(model_file=[tmp_path / "missing.keras"]))
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 3), np.float32))
    with pytest.raises(UsageError, match="--inputs belongs to one model"):
        select_models(options(model=["a.b:one", "c.d:two"], inputs=tmp_path / "in.npz"))


def test_a_user_model_cannot_take_a_builtin_name(tmp_path):
    with pytest.raises(UsageError, match="model name 'lstm' is already taken by a built-in model"):
        select_models(options(model_file=[keras_file(tmp_path / "lstm.keras")]))
    source = usermodel.Source("lstm", "builder", "x.y:lstm", str(tmp_path))
    with pytest.raises(usermodel.UserModelError, match="already taken"):
        runner_registry([source.to_json()])


def test_a_model_file_imports_under_one_name():
    spec = builtin_registry()["linear"]
    module = model_module(spec.module)
    assert module.__name__ == "keras_parity.models.linear" and module.__file__ == str(paths.MODELS / "linear.py")
    assert model_module(runner_registry([])["linear"].module) is module
    copies = [n for n, m in sys.modules.items() if getattr(m, "__file__", None) == module.__file__]
    assert copies == ["keras_parity.models.linear"]
    sys.path.insert(0, str(ROOT))  # where `models` would import from as a package of its own
    try:
        with pytest.raises(ImportError, match="imported as keras_parity.models, not models"):
            importlib.import_module("models.linear")
    finally:
        sys.path.remove(str(ROOT))
    assert "models" not in sys.modules and "models.linear" not in sys.modules


SHOW = """
import json, sys
from keras_parity.registry.builtin import model_module
from keras_parity.registry.select import runner_registry
registry = runner_registry(sys.argv[1:])
model_module(registry["linear"].module)
print(json.dumps({
    "table": {m: [s.module, s.seed, [c.name for c in s.cases], repr(s.tol)] for m, s in registry.items()},
    "file": sys.modules["keras_parity.models.linear"].__file__,
}))
"""


def test_a_backend_process_rebuilds_the_same_registry(tmp_path):
    """As a runner starts (PYTHONPATH at the checkout, another folder as its cwd)."""
    source = usermodel.Source("mine", "builder", "pkg.mod:build", str(tmp_path), rel_l2=1e-3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SHOW, source.to_json()], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    harness = builtin_registry().with_users({"mine": usermodel.spec(source)})
    assert shown["table"] == {m: [s.module, s.seed, [c.name for c in s.cases], repr(s.tol)] for m, s in harness.items()}
    assert shown["file"] == str(paths.MODELS / "linear.py")

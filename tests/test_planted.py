"""Planted changes of one layer, each a scale of 1 + 3 * MARGIN times that layer's float32 noise
as measured (models/noise.json): every forward cell of that case fails on every backend and
path, named at that layer, even deep in ResNet50 where the change reaches the logits diluted
below their own tolerance; the same plant with a change of zero passes everywhere.
Then Keras defaults planted in the installed Keras: what uses them fails, nothing else."""

import json

import pytest
from helpers import cli, copy_project

from keras_parity.registry import noise
from keras_parity.registry.spec import BACKENDS

pytestmark = pytest.mark.slow

PLANTS = {  # model: (its forward case the layer is in, the layer's Keras class, the layer)
    "linear": ("sigmoid_mlp", "Dense", "hidden"),
    "cnn": ("conv2d", "Conv2D", "conv_s1"),
    "bn_mlp": ("inference", "Dense", "dense_out"),
    "lstm": ("lstm", "Dense", "out"),
    # mid-network: the residual paths dilute the change before the logits (docs/concepts.md, "Every layer")
    "resnet50": ("logits", "Conv2D", "conv3_block2_2_conv"),
}
PLANT = """

import functools as _functools

import keras as _keras

_unplanted = _keras.layers.{cls}.call


@_functools.wraps(_unplanted)
def _planted(self, *args, **kwargs):  # one layer's output scaled by 1 + delta, every backend
    out = _unplanted(self, *args, **kwargs)
    return out * (1.0 + {delta!r}) if self.name == {layer!r} else out


_keras.layers.{cls}.call = _planted
"""


def _delta(model: str, case: str, layer: str) -> float:
    """30 times the layer's own measured noise (the rel L2 of its output against float64)."""
    return 3 * noise.MARGIN * noise.load()[f"{model}/{case}/layers/{layer}"]["rel_l2"]


def _planted_run(tmp_path_factory, scale: float) -> list[dict]:
    project = tmp_path_factory.mktemp("planted")
    copy_project(project)
    for model, (case, cls, layer) in PLANTS.items():
        src = project / "models" / f"{model}.py"
        src.write_text(src.read_text() + PLANT.format(cls=cls, layer=layer, delta=scale * _delta(model, case, layer)))
    proc = cli("parity", "--no-training", "--out", str(project / "out"), cwd=project)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((project / "out" / "parity.json").read_text())["cells"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _planted_run(tmp_path_factory, 1.0)


@pytest.mark.parametrize("model", PLANTS)
def test_a_change_of_30_times_the_noise_fails_and_is_named(planted, model):
    case, _, layer = PLANTS[model]
    mine = [c for c in planted if c["model"] == model and c["case"] == case]
    assert {c["backend"] for c in mine} == set(BACKENDS)
    for c in mine:
        assert c["status"] == "fail", (c["backend"], c["path"], c["outputs"], c["tol"])
        named = [p for p in c["problems"] if p.startswith("localized: ")]
        assert named and named[0].startswith(f"localized: first divergent layer '{layer}' "), c["problems"]
        # the layer's own output is judged too: the first layer beyond its noise is the plant's
        assert any(p.startswith(f"layer '{layer}': relative L2 error") for p in c["problems"]), c["problems"]


def test_cases_without_the_planted_layer_pass(planted):
    untouched = [c for c in planted if c["case"] not in {case for case, _, _ in PLANTS.values()}]
    untouched = [
        c for c in untouched if c["case"] != "training" and c["case"] != "moving_stats" or c["model"] != "bn_mlp"
    ]
    assert untouched and all(c["status"] == "pass" for c in untouched), [c for c in untouched if c["status"] != "pass"]


def test_the_same_plant_changing_nothing_passes_everywhere(tmp_path_factory):
    cells = _planted_run(tmp_path_factory, 0.0)
    assert cells and all(c["status"] == "pass" for c in cells), [c for c in cells if c["status"] != "pass"]


# A default a release changes, planted in the installed Keras as the release would change it:
# BatchNormalization's momentum (PyTorch's convention, 0.9 in Keras's terms) and Adam's epsilon
# (1e-8, as torch.optim.Adam has it). Planted into every model module, once per process.
DEFAULT_PLANT = """

import keras as _keras


def _plant_default(cls, arg, value):
    if getattr(cls.__init__, "_planted", False):
        return
    unplanted = cls.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(arg, value)
        unplanted(self, *args, **kwargs)

    __init__.__signature__, __init__._planted = __import__("inspect").signature(unplanted), True
    cls.__init__ = __init__


_plant_default(_keras.layers.BatchNormalization, "momentum", 0.9)
_plant_default(_keras.optimizers.Adam, "epsilon", 1e-8)
"""
# ResNet50 builds its BatchNormalizations with Keras's momentum, so there the plant moves the
# numbers too; its training path's diagnoses (float64 steps of 214 weights) cost minutes: left out.
MODELS = ("linear", "bn_mlp", "lstm")
WITH_BATCHNORM = ("bn_mlp",)


@pytest.fixture(scope="module")
def planted_defaults(tmp_path_factory):
    project = tmp_path_factory.mktemp("defaults")
    copy_project(project)
    for model in MODELS:
        src = project / "models" / f"{model}.py"
        src.write_text(src.read_text() + DEFAULT_PLANT)
    proc = cli("parity", *(a for m in MODELS for a in ("--model", m)), "--out", str(project / "out"), cwd=project)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((project / "out" / "parity.json").read_text())["cells"]


def test_a_changed_layer_default_fails_every_cell_of_the_models_using_the_layer(planted_defaults):
    """The built-in models give BatchNormalization its momentum: their numbers hold, and still
    every cell of a model with the layer fails, naming the default, old and new, and the fix."""
    said = "Keras default of BatchNormalization changed since the goldens: momentum 0.99 -> 0.9"
    for c in planted_defaults:
        named = [p for p in c["problems"] if p.startswith(said)]
        if c["model"] in WITH_BATCHNORM:
            assert c["status"] == "fail" and named, (c["model"], c["case"], c["backend"], c["problems"])
            assert named[0].endswith("if the new default is intended, accept it with `nox -s golden`")
        else:
            assert not named, c


def test_a_changed_optimizer_default_fails_every_cell_stepping_with_it(planted_defaults):
    """`Adam()` as users write it: every model's Adam steps fail on every backend, naming epsilon;
    a cell that neither steps with Adam nor has a BatchNormalization passes."""
    said = "Keras default of Adam changed since the goldens: epsilon 1e-07 -> 1e-08"
    adam = [c for c in planted_defaults if c["case"] == "train_adam"]
    assert {(c["model"], c["backend"]) for c in adam} == {(m, b) for m in MODELS for b in BACKENDS}
    for c in planted_defaults:
        named = any(p.startswith(said) for p in c["problems"])
        assert named == (c["case"] == "train_adam"), (c["model"], c["case"], c["problems"])
        if c["model"] not in WITH_BATCHNORM and c["case"] != "train_adam":
            assert c["status"] == "pass", c

"""The training path: the float64 reference's gradients against finite differences, TensorFlow's
float64 gradients and optimizer steps against the reference, a planted change that only
training shows, and a changed optimizer default reported as config drift."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, copy_project

from keras_parity import golden
from keras_parity.judge.compare import compare, pool
from keras_parity.reference import UnsupportedLayer
from keras_parity.reference import evaluate as reference_eval
from keras_parity.reference.training import check_optimizer, loss_value, reference
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS, OPTIMIZERS, TRAIN_STEPS, Tol
from keras_parity.run import envs, training
from keras_parity.run.weights import generate_inputs, generate_weights

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent
TRAINED = [(m, c) for m, spec in BUILTIN.items() for c in spec.cases if c.mode == "grad"]


def _problem(model, case):
    """Everything the reference needs for one training case, from the checked-in goldens."""
    spec = BUILTIN[model]
    b = golden.read_json(golden.graph_path(model))[case.builder]
    specs = [(p, tuple(s)) for p, s in b["weights"]]
    weights = dict(zip([p for p, _ in specs], generate_weights(specs, spec.seed, case.builder, spec.weight_scale)))
    inputs = generate_inputs(case.inputs, spec.seed, case.builder)
    out = reference_eval(b["config"], weights, inputs).outputs[0]
    tgt = training.target(spec.seed, case.builder, out.shape, case.classifier)
    return b["config"], weights, b["trainable"], inputs, tgt


@pytest.mark.parametrize("model, case", TRAINED, ids=[m for m, _ in TRAINED])
def test_reference_gradients_match_central_differences(model, case):
    """d/dh L(w + h v, x + h u) at 0 by central differences, against <grad, (v, u)>: the
    autograd gradient through the float64 layers is the derivative of the float64 forward."""
    config, weights, trainable, inputs, tgt = _problem(model, case)
    grads = reference("grad", config, weights, trainable, inputs, tgt, case.classifier, TRAIN_STEPS, None)
    rng = np.random.default_rng(0)
    dw = {k: rng.standard_normal(weights[k].shape) for k in trainable}
    dx = {k: rng.standard_normal(v.shape) for k, v in inputs.items()}

    def loss_at(h):
        w = {k: v + h * dw[k] if k in dw else v for k, v in weights.items()}
        x = {k: v + h * dx[k] for k, v in inputs.items()}
        return float(loss_value(reference_eval(config, w, x, training=True).outputs[0], tgt, case.classifier))

    # ResNet50's ReLUs and max-pooling: a kink crossed within the step is an error that shrinks
    # with h (at its 64x64 training input: 3.7e-2 at h = 1e-6, 1.5e-2 at 1e-8 where one is
    # crossed, 6.6e-7 at 1e-10); TensorFlow's float64 gradient, below, is its exact check.
    h, rtol = (1e-5, 1e-6) if model != "resnet50" else (1e-10, 1e-3)
    numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
    analytic = sum(float(np.sum(grads[f"grad/{k}"] * dw[k])) for k in trainable)
    analytic += sum(float(np.sum(grads[f"grad_input/{k}"] * dx[k])) for k in inputs)
    assert abs(numeric - analytic) <= rtol * abs(analytic), (numeric, analytic)


def test_tensorflow_float64_training_meets_the_reference(tmp_path):
    """Keras on TensorFlow in float64 (GradientTape, SGD and Adam through train_on_batch)
    against autograd and the reference's update rules: two implementations, one answer, once
    the reference rounds the hyperparameters Keras rounds (momentum, Adam's betas: without
    that, SGD's deltas differ by 1.6e-8 and Adam's by 6.7e-6, for every weight alike)."""
    models = [m for m, _ in TRAINED]
    python = envs.ensure("tensorflow")
    args = ["--backend", "tensorflow", "--out", str(tmp_path), "--dtype", "float64", "--configs"]
    proc = subprocess.run(
        [str(python), "-m", "keras_parity.run.runner", *args, *(a for m in models for a in ("--model", m))],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays = golden.read_npz(tmp_path / "tensorflow.npz")
    reported = json.loads((tmp_path / "tensorflow.json").read_text())["models"]
    checked = 0
    for model in models:
        ref = golden.read_npz(golden.reference_path(model))
        for case in (c for c in BUILTIN[model].cases if c.training):
            path = "eager" if case.mode == "grad" else "fit"
            got = {k.split("/", 3)[3]: v for k, v in arrays.items() if k.startswith(f"{model}/{case.name}/{path}/")}
            want = {k.split("/", 1)[1]: v for k, v in ref.items() if k.startswith(case.name + "/")}
            if case.mode != "grad":
                config, weights, trainable, inputs, tgt = _problem(model, case)
                hyper = reported[model]["training"][case.mode]  # Adam(): Keras's defaults
                want = training.sample(
                    reference(
                        case.mode, config, weights, trainable, inputs, tgt, case.classifier, TRAIN_STEPS, hyper, True
                    )
                )
            assert got.keys() == want.keys()
            g, w = pool(got), pool(want)
            for group in w:
                rel = np.linalg.norm(g[group] - w[group]) / np.linalg.norm(w[group])
                # 1e-10: Adam divides the float64 rounding of a gradient that is exactly zero
                # (a bias before a BatchNormalization) by sqrt(v) + 1e-7 into a step: 2.2e-12 of
                # bn_mlp's deltas, 1.0e-11 of ResNet50's at 64x64.
                assert rel <= 1e-10, (model, case.name, group, rel)
                checked += 1
    # loss, grad, grad_input; loss and delta per optimizer of the small models, bn_mlp's moving;
    # ResNet50's Adam: loss, delta, moving
    assert checked == 5 * 3 + 4 * 2 * 2 + 2 + 3


def test_pooled_comparison_ignores_noise_on_a_zero_gradient_and_names_the_worst_weight():
    ref = {"grad/dense/bias": np.zeros(4), "grad/dense/kernel": np.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    noisy = {k: (v + 1e-9).astype(np.float32) for k, v in ref.items()}
    tol = Tol(1e-6, 1e-4, 1e-3, "test")
    assert compare(noisy, ref, tol, pooled=True).status == "pass"
    wrong = dict(noisy, **{"grad/dense/kernel": noisy["grad/dense/kernel"] * np.float32(1.01)})
    found = compare(wrong, ref, tol, pooled=True)
    assert found.status == "fail" and "worst at grad/dense/kernel[" in found.problems[0]


def test_optimizer_options_the_reference_lacks_are_refused_by_name():
    with pytest.raises(UnsupportedLayer, match="SGD with weight_decay=None only"):
        check_optimizer("sgd", {**OPTIMIZERS["sgd"], **training.NEUTRAL, "weight_decay": 0.01})
    with pytest.raises(UnsupportedLayer, match="amsgrad=False only"):
        check_optimizer("adam", {**OPTIMIZERS["adam"], **training.NEUTRAL, "amsgrad": True})


@pytest.mark.slow
def test_planted_batchnorm_momentum_fails_only_what_training_moves(tmp_path):
    """PyTorch's momentum convention (0.1 where Keras says 0.99, here 0.9) leaves every output
    alone and moves the moving statistics: the steps' 'moving' group fails on every backend,
    named, and localization says the forward pass is not where it starts."""
    project = tmp_path / "project"
    copy_project(project)
    src = project / "models" / "bn_mlp.py"
    src.write_text(src.read_text().replace("momentum=0.99", "momentum=0.9"))
    proc = cli("parity", "--model", "bn_mlp", "--out", str(tmp_path / "out"), cwd=project)
    assert proc.returncode == 1
    cells = json.loads((tmp_path / "out" / "parity.json").read_text())["cells"]
    failing = {(c["case"], c["backend"]) for c in cells if c["status"] == "fail"}
    moved = ("moving_stats", "train_sgd", "train_adam")
    assert failing == {(case, b) for case in moved for b in BACKENDS}, failing
    for c in cells:
        if c["case"] in ("train_sgd", "train_adam"):
            assert any(
                p.startswith("moving: relative L2 error") and "worst at moving/bn/moving_" in p for p in c["problems"]
            )
            assert not any(p.startswith("delta:") for p in c["problems"]), c["problems"]
            assert any("no layer of the training-mode forward pass jumps" in p for p in c["problems"])
            assert c["rounding"] == "semantic" or c["backend"] == "torch", c["problems"]


def test_a_changed_optimizer_default_fails_the_cells_using_it_and_nothing_else(tmp_path):
    """Goldens recorded when Adam's default epsilon was 1e-8; today's Keras says 1e-7. The Adam
    cell fails naming the default, old and new, and the fix, with no diagnosis run for numbers
    that hold; the cells without Adam pass."""
    copy = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN / "lstm", copy / "lstm")
    meta_path = copy / "lstm" / "reference.json"
    meta = json.loads(meta_path.read_text())
    meta["training"]["defaults"]["keras.optimizers.Adam"]["epsilon"] = 1e-8
    meta_path.write_text(json.dumps(meta))
    proc = cli("parity", "--model", "lstm", "--backend", "jax", "--golden-dir", str(copy), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1, proc.stdout[-2000:]
    cells = {c["case"]: c for c in json.loads((tmp_path / "o" / "parity.json").read_text())["cells"]}
    assert cells["train_adam"]["status"] == "fail"
    assert cells["train_adam"]["problems"] == [
        "Keras default of Adam changed since the goldens: epsilon 1e-08 -> 1e-07; "
        "if the new default is intended, accept it with `nox -s golden`"
    ]
    assert all(c["status"] == "pass" for case, c in cells.items() if case != "train_adam"), cells

"""The zoo (`nox -s zoo`): every keras.applications architecture in its table, weights that keep
every output informative, a builder's weights drawn again for the reference, the verdicts, and
the cheap slice run end to end on all three backends."""

import json

import numpy as np
import pytest
from helpers import cli

keras = pytest.importorskip("keras")

from keras_parity.errors import UsageError  # noqa: E402
from keras_parity.judge.compare import CellResult, OutputMetrics  # noqa: E402
from keras_parity.judge.information import why_uninformative  # noqa: E402
from keras_parity.registry import usermodel  # noqa: E402
from keras_parity.run.record import BackendRun, ModelRecord  # noqa: E402
from keras_parity.run.varpaths import path_of, variable_paths  # noqa: E402
from keras_parity.run.weights import checksum, depthwise_fan_ins, generate_weights  # noqa: E402
from keras_parity.zoo import models, run  # noqa: E402


def test_the_zoo_lists_every_keras_applications_architecture():
    here = {n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))}
    assert here == set(models.ARCHITECTURES)
    assert models.NAMES[:2] == ("transformer_classifier", "sequence_model") and "MobileNetV3Small" in models.NAMES


def test_an_unknown_model_is_refused_by_name():
    with pytest.raises(UsageError, match="no model ResNet49 in the zoo; choose from transformer_classifier"):
        run.pick(["ResNet49"], ci=False)
    assert run.pick(None, ci=True) == list(run.CI_SLICE)


def _drawn(model, fan_in):
    specs = [(p, tuple(v.shape)) for p, v in zip(variable_paths(model), model.weights)]
    return specs, generate_weights(specs, usermodel.USER_SEED, "m", generic=True, fan_in=fan_in)


def test_depthwise_kernels_are_drawn_with_their_true_fan_in():
    x = keras.Input((8, 8, 64))
    y = keras.layers.SeparableConv2D(4, 3)(keras.layers.DepthwiseConv2D(3)(x))
    model = keras.Model(x, y)
    fan_in = depthwise_fan_ins(model)
    assert sorted(fan_in.values()) == [9, 9]  # 3 x 3 per channel, not 3 x 3 x 64
    specs, drawn = _drawn(model, fan_in)
    kernel = dict(zip((p for p, _ in specs), drawn))[path_of(model)[id(model.layers[1].kernel)]]
    assert abs(kernel.std() - np.sqrt(2 / 9)) < 0.05


def test_a_mobilenet_with_seeded_weights_tells_its_inputs_apart():
    """Drawn by shape, a depthwise kernel's fan-in counts every channel: the signal shrinks by
    sqrt(channels) per block and every input gives the same logits."""
    model = models.application("MobileNetV3Small")
    x = np.stack([models.inputs("MobileNetV3Small", 1)[0], models.inputs("MobileNetV3Small", 2)[0]])
    verdicts = []
    for fan_in in ({}, depthwise_fan_ins(model)):
        model.set_weights(_drawn(model, fan_in)[1])
        verdicts.append(why_uninformative({"logits": np.asarray(model(x))}))
    assert "give the same output" in verdicts[0] and verdicts[1] is None


def test_a_builders_weights_drawn_again_are_the_runners_or_refused():
    model = keras.Sequential([keras.Input((5, 5, 8)), keras.layers.DepthwiseConv2D(3), keras.layers.Dense(2)])
    specs, drawn = _drawn(model, depthwise_fan_ins(model))
    record = {"weights": [[p, list(s)] for p, s in specs], "fan_in": depthwise_fan_ins(model)}
    again = usermodel.model_weights("m", {**record, "weights_sha256": checksum(drawn)}, {})
    assert checksum(list(again.values())) == checksum(drawn)
    with pytest.raises(usermodel.UserModelError, match="drawn again differ"):
        usermodel.model_weights("m", {**record, "fan_in": {}, "weights_sha256": checksum(drawn)}, {})


def _cell(backend, status="pass", rel_l2=1e-7, reference="float64"):
    metrics = OutputMetrics(max_abs=0.0, max_rel=0.0, rel_l2=rel_l2, nan=0, inf=0)
    return CellResult(
        "m", "inference", backend, "cpu", "predict", status, outputs={"output": metrics}, reference=reference
    )


def _runs(*backends, missing=()):
    return {b: BackendRun(b, models={} if b in missing else {"m": ModelRecord(seconds=1.5)}) for b in backends}


@pytest.mark.parametrize(
    "cells, missing, verdict",
    [
        ([_cell("jax"), _cell("torch", rel_l2=3e-7)], (), "pass"),
        ([_cell("jax"), _cell("torch", "fail", 2e-3)], (), "fail"),
        ([_cell("jax")], ("torch",), "error"),  # a backend that never produced the model
        ([_cell("jax", reference="cross-backend"), _cell("torch", reference="cross-backend")], (), "no reference"),
    ],
)
def test_a_models_verdict_is_its_worst_backends(cells, missing, verdict):
    (row,) = run.rows_of(["m"], cells, _runs("jax", "torch", missing=missing))
    assert row.verdict == verdict
    assert row.rel_l2["jax"] == 1e-7


@pytest.mark.slow
def test_the_ci_slice_meets_float64_on_every_backend(tmp_path):
    """The zoo's examples through the pipeline of `--model`: the reference from the runs, the
    table in results/zoo, nothing written into the checkout's goldens."""
    names = ("transformer_classifier", "sequence_model")
    done = cli("zoo", *(a for n in names for a in ("--model", n)), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "zoo" / "zoo.json").read_text())
    assert [r["model"] for r in doc["rows"]] == list(names)
    for row in doc["rows"]:
        assert row["verdict"] == "pass" and row["reference"] == "float64"
        assert set(row["rel_l2"]) == {"tensorflow", "jax", "torch"}
        assert all(0.0 < e < 1e-5 for e in row["rel_l2"].values()), row
    assert "| transformer_classifier |" in (tmp_path / "zoo" / "zoo.md").read_text()
    assert (tmp_path / "zoo" / "golden" / "sequence_model" / "reference.npz").exists()


def unnamed_layers():
    """A builder as users write them, with layers Keras names by a process-wide count."""
    x = keras.Input((4,), name="x")
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.Dense(3)(x)))


def test_a_builders_variable_paths_do_not_hang_on_what_the_process_built_before(tmp_path):
    from pathlib import Path

    from keras_parity.run.build import build_model
    from keras_parity.run.flags import RunFlags

    here = str(Path(__file__).parent)
    spec = usermodel.spec(usermodel.Source("unnamed", "builder", "test_zoo:unnamed_layers", str(tmp_path), cwd=here))
    timings = dict.fromkeys(("build",), 0.0)
    first = build_model(spec, spec.cases[0], None, RunFlags(), timings, None)[2].weights
    keras.layers.Dense(5)  # what another model (or a failed one) would have numbered first
    again = build_model(spec, spec.cases[0], None, RunFlags(), timings, None)[2].weights
    assert first == again
    assert {p for p, _ in first} == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}

"""Property tests over models nobody here wrote: random small graphs (tests/modelgen.py), each
saved to a .keras file and loaded back as users bring them.

Fast tier: every graph of the fixed seed set (modelgen.SEEDS) and every regression case must
meet Keras's own float64 run on TensorFlow to float64 rounding, or be refused by the reference in
one UnsupportedLayer line naming the layer; any other exception is a failure. Where Keras itself
departs from float64 (the Keras findings: float32 constants in a float64 model, a kernel
TensorFlow lacks in float64), KERAS_FINDINGS names the departure and its looser bound. Hypothesis
draws more graphs and shrinks a failure to the smallest graph that still fails
(`pytest --gen-seed N --gen-examples K`); a failure found that way goes into REGRESSIONS.

Slow tier: N generated models through one `keras_parity golden` and one `keras_parity parity`
on the three backends.
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
from helpers import ROOT, cli, keras_in_float64

keras = pytest.importorskip("keras")

import modelgen  # noqa: E402

from keras_parity.reference import UnsupportedLayer, evaluate  # noqa: E402
from keras_parity.registry.userload import graph_model  # noqa: E402
from keras_parity.run.modelio import set_weights  # noqa: E402
from keras_parity.run.varpaths import variable_paths, weights_by_path  # noqa: E402

# Keras's warnings to the authors of these models (a softmax over one value, rms_scaling's
# deprecation, a mask a layer drops) say nothing about the reference.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:keras.*", "ignore::DeprecationWarning:keras.*")

TOL = 1e-10  # rel L2 of the reference against Keras in float64: float64 rounding
CONSTANT = 1e-6  # a float32 constant in a float64 model: ~3e-8 relative per use, a few uses


def _f32_exact(x) -> bool:
    return float(np.float32(x)) == float(x)


def _acts(b) -> set:
    inner = [b.get("activation")] if b["block"] != "Operator" else []
    return set(inner)


# The Keras findings a generated graph can run into (docs/own-models.md#keras-findings,
# tests/test_reference_more_layers.py): name -> (does this block have it, bound, reason).
KERAS_FINDINGS = {
    "gelu": (
        lambda b: "gelu" in _acts(b),
        CONSTANT,
        "exact gelu's 1/sqrt(2) is a float32 constant on TensorFlow, even in a float64 model",
    ),
    "leaky_relu": (
        lambda b: "leaky_relu" in _acts(b),
        CONSTANT,
        "the activation leaky_relu's slope 0.2 is tf.nn.leaky_relu's float32 attribute",
    ),
    "LeakyReLU slope": (
        lambda b: b["block"] == "LeakyReLU" and not _f32_exact(b["negative_slope"]),
        CONSTANT,
        "LeakyReLU's slope is tf.nn.leaky_relu's float32 attribute",
    ),
    "ReLU negative_slope": (
        lambda b: (
            b["block"] == "ReLU" and set(b) - {"block"} == {"negative_slope"} and not _f32_exact(b["negative_slope"])
        ),
        CONSTANT,
        "ReLU with only a negative slope is tf.nn.leaky_relu, its slope a float32 attribute",
    ),
    "Rescaling": (
        lambda b: b["block"] == "Rescaling" and not (_f32_exact(b["scale"]) and _f32_exact(b["offset"])),
        CONSTANT,
        "Rescaling casts its scale and offset through a float32 tensor",
    ),
    "Normalization(mean=, variance=)": (
        lambda b: b["block"] == "Normalization" and b["stats"] == "config",
        CONSTANT,
        "Normalization converts the statistics it is given to a float32 tensor first",
    ),
    "MultiHeadAttention scale": (
        lambda b: b["block"] == "MultiHeadAttention" and not _f32_exact(1 / np.sqrt(b["key_dim"])),
        CONSTANT,
        "MultiHeadAttention's 1/sqrt(key_dim) is cast through float32",
    ),
    "ops.gelu(approximate=True)": (
        lambda b: b["block"] == "Operator" and b["op"] == "gelu",
        CONSTANT,
        "approximate gelu's 0.044715 is a float32 constant on TensorFlow",
    ),
    "MaxPooling3D": (
        lambda b: b["block"] == "MaxPooling3D",
        CONSTANT,
        "TensorFlow has no float64 kernel for 3-d max pooling: Keras's run keeps that layer "
        "float32 (its input rounded to float32; a max adds nothing)",
    ),
}


def findings(g) -> dict[str, tuple[float, str]]:
    """The Keras findings graph g runs into: name -> (bound, reason)."""
    return {
        name: (bound, reason)
        for name, (has, bound, reason) in KERAS_FINDINGS.items()
        if any(has(b) for b in modelgen.blocks_deep(g))
    }


# ------------------------------------------------------------------------ Keras in float64


def _to_float64(obj, keep32=False):
    """A serialized model with its float32 dtype policies and input dtypes made float64,
    but for MaxPooling3D (KERAS_FINDINGS)."""
    if isinstance(obj, list):
        return [_to_float64(o, keep32) for o in obj]
    if not isinstance(obj, dict):
        return obj
    keep32 = keep32 or obj.get("class_name") == "MaxPooling3D"
    if obj.get("class_name") == "DTypePolicy" and not keep32:
        return {**obj, "config": {**obj["config"], "name": obj["config"]["name"].replace("float32", "float64")}}
    return {
        k: ("float64" if k == "dtype" and v == "float32" and not keep32 else _to_float64(v, keep32))
        for k, v in obj.items()
    }


def _feed_structure(model, feed: dict):
    """The inputs in the structure the model was built with, from arrays by input name (a
    Sequential model takes its one input, named in0)."""
    if isinstance(model, keras.Sequential):
        return feed["in0"]
    return keras.tree.map_structure(lambda t: feed[t._keras_history.operation.name], model.input)


def keras_float64(model, feed: dict, xla: bool) -> list[np.ndarray]:
    """Keras's own float64 run of a loaded model: rebuilt from its config with every dtype
    policy float64 (a saved file carries float32 ones), its weights set as float64."""
    config = _to_float64(keras.saving.serialize_keras_object(model))
    weights = weights_by_path(model)
    with keras_in_float64():
        m64 = keras.saving.deserialize_keras_object(config)
        set_weights(m64, [weights[p].astype(v.dtype) for p, v in zip(variable_paths(m64), m64.weights)])
        x = _feed_structure(m64, feed)
        if xla:  # TensorFlow computes 3-d average pooling in float64 under XLA only
            import tensorflow as tf

            out = tf.function(lambda t: m64(t, training=False), jit_compile=True)(x)
        else:
            out = m64(x, training=False)
        return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)]


def _layer_names(config, classes) -> set:
    """Names of the layers of these classes anywhere in a serialized model (nested, wrapped)."""
    found = set()

    def walk(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") in classes and isinstance(obj.get("config"), dict):
                found.add(obj["config"].get("name"))
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(config)
    return found - {None}


def rel_l2(got, want) -> float:
    diff = np.linalg.norm((np.asarray(got, np.float64) - np.asarray(want, np.float64)).ravel())
    norm = np.linalg.norm(np.asarray(want, np.float64).ravel())
    return 0.0 if diff == 0 else float(diff / max(norm, 1e-300))


# ------------------------------------------------------------------------------ the check


def check_graph(g: dict, folder) -> dict:
    """One graph end to end in this process; raises AssertionError naming the graph. Returns
    what happened: {'outcome': 'float64' | 'refused', 'error': ..., 'message': ...}."""
    what = modelgen.describe(g)
    model, path = modelgen.save_and_load(g, folder)
    arrays = modelgen.draw_inputs(g)
    feed = {f"in{k}": a for k, a in enumerate(arrays)}
    # As the suite runs a user's file: a Sequential model as its functional graph, the weights
    # keyed by the layer tree (run/varpaths.py), never by v.path (a loaded model's can clash).
    graph = graph_model(model, path.stem)
    config, weights = graph.get_config(), weights_by_path(graph)
    try:
        result = evaluate(config, weights, feed)
    except UnsupportedLayer as exc:
        msg = str(exc)
        expected = modelgen.unsupported(g)
        assert "\n" not in msg, f"{what}: UnsupportedLayer in more than one line: {msg!r}"
        assert expected, f"{what}: the reference refuses a graph of layers it implements: {msg}"
        classes = {kind for kind, _ in expected}
        names = _layer_names(keras.saving.serialize_keras_object(model), classes) | classes
        assert any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", msg) for n in names), (
            f"{what}: UnsupportedLayer does not name the layer it refuses ({sorted(names)}): {msg}"
        )
        return {"outcome": "refused", "message": msg}
    except Exception as exc:  # noqa: BLE001 - any other exception is the failure to report
        raise AssertionError(f"{what}: the reference raised {type(exc).__name__}: {exc}") from exc
    types = modelgen.layer_types(g)
    want = keras_float64(model, feed, xla=bool(types["AveragePooling3D"]))
    got = result.outputs
    assert len(got) == len(want), f"{what}: {len(got)} reference outputs, Keras gives {len(want)}"
    known = findings(g)
    tol = max([TOL] + [bound for bound, _ in known.values()])
    errors = []
    for i, (r, k) in enumerate(zip(got, want)):
        assert r.shape == k.shape, f"{what}: output {i} has shape {r.shape}, Keras's {k.shape}"
        if not known.get("MaxPooling3D"):
            assert k.dtype == np.float64, f"{what}: Keras's float64 run gave {k.dtype} for output {i}"
        errors.append(rel_l2(r, k))
    why = "; ".join(f"{n}: {reason}" for n, (_, reason) in known.items()) or "float64 rounding"
    assert max(errors) <= tol, f"{what}: rel L2 {max(errors):.3g} > {tol:g} ({why})"
    return {"outcome": "float64", "error": max(errors), "findings": sorted(known)}


@pytest.fixture(scope="module")
def tensorflow_backend():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras honours float64 end to end on TensorFlow only")


@pytest.mark.parametrize("seed", list(modelgen.SEEDS), ids=lambda s: f"{s}-{modelgen.from_seed(s)['style']}")
def test_generated_graph_meets_keras_in_float64_or_is_refused_in_one_line(seed, tmp_path, tensorflow_backend):
    check_graph(modelgen.from_seed(seed), tmp_path)


# Graphs that failed, shrunk (by Hypothesis, or by hand to one block), each kept as a regression case.
REGRESSIONS = {
    # `pytest --gen-seed 1 --gen-examples 60` shrank to it: a Sequential nested in a nested
    # Sequential makes the reference raise KeyError: 'Sequential' (reference/graph.py _sequential).
    "sequential-in-nested-sequential": {
        "seed": 0,
        "style": "nested_sequential",
        "naming": "level",
        "inputs": [{"shape": [2]}],
        "outer": "sequential",
        "trunk": [{"block": "Activation", "activation": "linear"}],
        "twice": False,
        "inner_input": False,
        "inner": [{"block": "Activation", "activation": "linear"}],
        "deep": 1,
        "tail": [],
    },
    # A user's layer inside a nested Sequential / a nested functional model: refused, but the
    # line names 'Sequential' / 'Functional', not the layer it lacks (seeds 83, 184, 285, 308).
    "custom-layer-in-nested-sequential": {
        "seed": 0,
        "style": "nested_sequential",
        "naming": "level",
        "inputs": [{"shape": [2]}],
        "outer": "functional",
        "trunk": [],
        "twice": False,
        "inner_input": False,
        "inner": [{"block": "ScaleShift"}],
        "deep": 0,
        "tail": [],
    },
    "custom-layer-in-nested-model": {
        "seed": 0,
        "style": "nested_functional",
        "naming": "level",
        "inputs": [{"shape": [2]}],
        "outer": "functional",
        "trunk": [],
        "twice": False,
        "inner_input": True,
        "inner": [{"block": "ScaleShift"}],
        "deep": 0,
        "tail": [],
    },
}


@pytest.mark.parametrize("graph", list(REGRESSIONS.values()), ids=list(REGRESSIONS))
def test_regression_graph(graph, tmp_path, tensorflow_backend):
    check_graph(graph, tmp_path)


def _option(request, name: str, env: str):
    value = request.config.getoption(name)
    return value if value is not None else (int(os.environ[env]) if os.environ.get(env) else None)


def test_hypothesis_graphs(request, tmp_path_factory, tensorflow_backend):
    """Hypothesis draws the graphs: derandomized and not shrunk by default (a failure names its
    graph; the fast tier stays fast); with --gen-seed N (KERAS_PARITY_GEN_SEED) its own draws
    from that seed, and a failure shrinks to the smallest graph that still fails."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    seed = _option(request, "--gen-seed", "KERAS_PARITY_GEN_SEED")
    examples = _option(request, "--gen-examples", "KERAS_PARITY_GEN_EXAMPLES")
    explore = seed is not None or examples is not None
    phases = list(Phase) if explore else [Phase.explicit, Phase.reuse, Phase.generate]

    @settings(
        max_examples=examples or 10,
        derandomize=seed is None,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(modelgen.graphs())
    def run(graph):
        check_graph(graph, tmp_path_factory.mktemp("graph"))

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()


def test_a_sequential_models_own_config_is_evaluated_or_refused_in_one_line(tmp_path, tensorflow_backend):
    """evaluate() on model.get_config() of a loaded Sequential model as it is (the suite hands
    it the functional graph, graph_model): the same outputs, or one UnsupportedLayer line."""
    g = next(g for g in map(modelgen.from_seed, modelgen.SEEDS) if g["style"] == "sequential")
    model, path = modelgen.save_and_load(g, tmp_path)
    feed = {"in0": modelgen.draw_inputs(g)[0]}
    graph = graph_model(model, path.stem)
    want = evaluate(graph.get_config(), weights_by_path(graph), feed).outputs
    try:
        got = evaluate(model.get_config(), weights_by_path(model), feed).outputs
    except UnsupportedLayer as exc:
        assert "\n" not in str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{modelgen.describe(g)}: evaluate(Sequential config) raised {type(exc).__name__}: {exc}")
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_the_seed_set_covers_every_layer_type_of_the_reference():
    assert modelgen.uncovered() == [], "set modelgen.COVER_SEEDS to modelgen.cover_seeds()"
    assert len(modelgen.SEEDS) >= 100


def test_the_generator_builds_what_it_describes(tmp_path):
    """The description's output shapes and layer types are the built model's; a graph is the
    same from the same seed."""
    for seed in list(modelgen.SEEDS)[:20]:
        g = modelgen.from_seed(seed)
        assert g == modelgen.from_seed(seed) and json.loads(json.dumps(g)) == g
        model = modelgen.build(g)
        shapes = [tuple(t.shape[1:]) for t in keras.tree.flatten(model.outputs)]
        assert shapes == [tuple(s) for s in modelgen.output_specs(g)], modelgen.describe(g)
        config = json.dumps(keras.saving.serialize_keras_object(model))
        for kind in modelgen.layer_types(g):
            if not kind.startswith("op:"):
                assert f'"class_name": "{kind}"' in config, (kind, modelgen.describe(g))


# --------------------------------------------------------------- slow: the command line


def _pads(b, s):
    """Each spatial axis's (pool, total 'same' padding) of a pooling block on input s."""
    strides = b.get("strides") or b["pool_size"]
    return [(k, max((-(-n // st) - 1) * st + k - n, 0)) for n, k, st in zip(s.shape[:-1], b["pool_size"], strides)]


def _torch_average_pool(b, s) -> bool:
    """Keras on torch averages 'same'-padded windows wrongly where some axis's padding is
    uneven: it then pads every axis itself with copies of the edge values (mode 'replicate')
    and counts them in the mean, where TensorFlow and JAX leave the padding out; any axis with
    padding under a window of 3 or more then differs (keras-team/keras#23233)."""
    if not (b["block"].startswith("AveragePooling") and b.get("padding") == "same"):
        return False
    pads = _pads(b, s)
    return any(pad % 2 for _, pad in pads) and any(pad and k >= 3 for k, pad in pads)


def _torch_average_pool_3d(b, s) -> bool:
    """AveragePooling3D 'same' with even padding and a window longer than its input along an
    axis: torch's avg_pool3d refuses the input as smaller than the kernel, padding not counted
    (RuntimeError; 1-d pooling takes the same input)."""
    if not (b["block"] == "AveragePooling3D" and b.get("padding") == "same"):
        return False
    pads = _pads(b, s)
    return not any(pad % 2 for _, pad in pads) and any(n < k for n, (k, _) in zip(s.shape, pads))


def _torch_layer_norm(b, s) -> bool:
    """LayerNormalization over one axis that is not the last: Keras on torch hands it to
    F.layer_norm, which normalizes the trailing axes (wrong numbers, or a RuntimeError without
    scale and center; keras-team/keras#23510)."""
    return b["block"] == "LayerNormalization" and b.get("axis") == 1 and len(s.shape) > 1


# What Keras gets wrong on one backend, in Keras 3.15.1 (the pinned one): name -> (backend, does
# this block on this input have it). parity fails or errors their cells there, rightly.
BACKEND_FINDINGS = {
    "torch AveragePooling same, uneven padding": ("torch", _torch_average_pool),
    "torch AveragePooling3D window longer than its input": ("torch", _torch_average_pool_3d),
    "torch LayerNormalization on a non-trailing axis": ("torch", _torch_layer_norm),
}


def backend_findings(g) -> dict[str, str]:
    """The backends graph g meets a backend's Keras finding on: backend -> the finding's name."""
    out = {}
    for name, (backend, has) in BACKEND_FINDINGS.items():
        if any(has(b, s) for b, s in modelgen.block_inputs(g)):
            out[backend] = name
    return out


def _float_input_seeds(n: int) -> list[int]:
    """The first n seeds whose graphs take float inputs only (without --inputs the command line
    draws floats)."""
    seeds, seed = [], 0
    while len(seeds) < n:
        if not any("vocab" in i for i in modelgen.from_seed(seed)["inputs"]):
            seeds.append(seed)
        seed += 1
    return seeds


def cli_problems(graphs: dict, models: dict, made, checked, golden, cells: list) -> list[str]:
    """Every problem of one `golden` and one `parity` run over generated models, one line each:
    a traceback or KeyError printed, a backend that failed on a model, a model without goldens or
    without a float64 reference it should have, a refusal that does not name the layer, a cell
    that did not pass; a Keras finding on one backend (BACKEND_FINDINGS) is printed instead."""
    known = {name: backend_findings(g) for name, g in graphs.items()}

    def knows(model: str, backend: str) -> bool:
        if known.get(model, {}).get(backend):
            print(f"known: {model} on {backend}: Keras's finding '{known[model][backend]}'")
            return True
        return False

    problems = []
    for what, proc in (("golden", made), ("parity", checked)):
        text = proc.stdout + proc.stderr
        problems += [
            f"{what} printed: {ln.strip()}" for ln in text.splitlines() if "Traceback" in ln or "KeyError" in ln
        ]
    failed_on = [ln.split(" failed on ", 1) for ln in made.stdout.splitlines() if " failed on " in ln]
    failed_on = [(b.strip(), rest.split(":", 1)[0], rest) for b, rest in failed_on]
    problems += [f"golden: {b} failed on {rest}" for b, model, rest in failed_on if not knows(model, b)]
    if made.returncode != 0 and not failed_on:
        problems.append(f"golden exited {made.returncode}")
    lines = [ln.strip() for ln in made.stdout.splitlines()]
    problems += [f"golden: {ln}" for ln in lines if "left as they were" in ln and "its snapshot" not in ln]
    for name, g in graphs.items():
        what = modelgen.describe(g)
        meta = golden / name / "reference.json"
        if not meta.exists():
            problems.append(f"{name}: no reference.json ({what})")
            continue
        kind = json.loads(meta.read_text())["reference"]
        expected = modelgen.unsupported(g)
        if kind == {"kind": "float64"}:
            if expected:
                problems.append(f"{name}: a float64 reference although the reference lacks {expected} ({what})")
            continue
        said = [ln for ln in lines if ln.startswith(f"{name}: no float64 reference")]
        classes = {c for c, _ in expected}
        names = _layer_names(models[name], classes) | classes
        if len(said) != 1 or len(kind.get("missing", [])) != 1 or not any(n in said[0] for n in names):
            problems.append(f"{name}: {kind}, said {said}, expected one line naming {sorted(names)} ({what})")
    bad = [c for c in cells if c["status"] != "pass"]
    problems += [
        f"parity {c['model']} {c['backend']}: {c['status']}: {'; '.join(c['problems'])[:300]}"
        for c in bad
        if not knows(c["model"], c["backend"])
    ]
    if checked.returncode not in ((1, 3) if bad else (0,)):
        problems.append(f"parity exited {checked.returncode}")
    return list(dict.fromkeys(problems))  # a cell's paths (predict, eager) say the same


@pytest.mark.slow
def test_generated_models_through_golden_and_parity_on_every_backend(request, tmp_path):
    """N generated models (float inputs: without --inputs the command line draws floats), one
    `golden` and one `parity` over all of them on the three backends: every model gets a float64
    reference or one line naming the layer the reference lacks, nothing prints a traceback or a
    KeyError, and parity passes. Every problem is listed, one line each, before the test fails."""
    n = _option(request, "--gen-models", "KERAS_PARITY_GEN_MODELS") or 100
    files, graphs, models = [], {}, {}
    for seed in _float_input_seeds(n):
        g = modelgen.from_seed(seed)
        model = modelgen.build(g)
        modelgen.set_weights(model, seed)
        path = tmp_path / "models" / f"gen{seed}.keras"
        path.parent.mkdir(exist_ok=True)
        model.save(path)
        files += ["--model-file", str(path)]
        graphs[path.stem], models[path.stem] = g, keras.saving.serialize_keras_object(model)
    golden = tmp_path / "golden"
    # modelgen registers the user's own layer (ScaleShift): each backend imports it from tests/.
    common = [*files, "--golden-dir", str(golden), "--custom-objects", "modelgen"]
    start = time.perf_counter()
    made = cli("golden", *common, "--out", str(tmp_path / "g"), cwd=ROOT / "tests")
    made_s = time.perf_counter() - start
    checked = cli("parity", *common, "--out", str(tmp_path / "p"), cwd=ROOT / "tests")
    print(f"{n} generated models: golden {made_s:.1f} s, parity {time.perf_counter() - start - made_s:.1f} s")

    for what, proc in (("golden", made), ("parity", checked)):  # kept for a look afterwards
        (tmp_path / f"{what}.log").write_text(proc.stdout + proc.stderr)
    report = tmp_path / "p" / "parity.json"
    cells = json.loads(report.read_text())["cells"] if report.exists() else []
    problems = cli_problems(graphs, models, made, checked, golden, cells)
    if cells:
        assert {c["backend"] for c in cells} == {"tensorflow", "jax", "torch"}
        assert {c["model"] for c in cells} == set(graphs)
    assert not problems, "\n".join(problems)

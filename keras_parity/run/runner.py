"""One backend process: build every requested model, set seeded weights, run each case.

Usage: python -m keras_parity.run.runner --backend jax --out DIR [--model M ...] [--repeat]
KERAS_BACKEND is set here, before keras is imported, and never changes in the process.
Writes its BackendRun to DIR (keras_parity/run/record.py): outputs, captures, and its record
(provenance, timings, per-model builders, errors).
"""

from __future__ import annotations

import argparse
import gc
import resource
import runpy
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_parity import golden, watch
from keras_parity.judge.numerics import max_ulp
from keras_parity.registry import userload, usermodel
from keras_parity.registry.builtin import builtin_registry, model_module
from keras_parity.registry.select import runner_registry
from keras_parity.registry.spec import OPTIMIZERS, TRAIN_STEPS
from keras_parity.run import envinfo, flags, knobs, parent, plant
from keras_parity.run.build import build_model
from keras_parity.run.flags import RunFlags
from keras_parity.run.modelio import PATHS, case_paths, input_names, output_dict, set_weights, to_numpy
from keras_parity.run.probe import CALL_PATHS, Probe
from keras_parity.run.record import MODEL_MARKER, BackendRun, ModelRecord, Provenance, one_line, write_run
from keras_parity.run.varpaths import path_of
from keras_parity.run.weights import checksum, generate_inputs


def _run_training(model, case, inputs: dict, seed: int, timings: dict) -> dict:
    from keras_parity.run import train_step, training

    xs = [inputs[n] for n in input_names(model)]
    shape = (xs[0].shape[0], *model.output.shape[1:])
    tgt = training.target(seed, case.builder, shape, case.classifier)
    t0 = time.perf_counter()
    out = train_step.run(model, case, xs, tgt, OPTIMIZERS, TRAIN_STEPS)
    timings["training"] += time.perf_counter() - t0
    return out


def _run_case(model, case, inputs: dict, path: str, repeat: bool, timings: dict, seed=0, probe=None):
    """(the cell's outputs by key, every layer's output where `probe` served the call, else None)."""
    import keras

    if case.training:
        return _run_training(model, case, inputs, seed, timings), None
    # The structure the functional model declares: one array, a list in input order or a dict.
    packed = keras.tree.pack_sequence_as(model.input, [inputs[n] for n in input_names(model)])
    training = case.mode != "infer"
    # A model call the probe can make (the same layers on the same inputs, op by op): one call
    # for the cell and for its layers (no probe is given for moving statistics: _one_case).
    probed = probe is not None and probe.outputs is not None and path in CALL_PATHS
    if case.mode == "infer" and path == "predict":
        # The compiled step predict() runs (tf.function / jax.jit / torch eager), on the one
        # batch; same bits as predict(), without its per-call data-adapter set-up.
        call = lambda: model.predict_on_batch(packed)  # noqa: E731
    elif probed:
        call = lambda: probe.call(model, inputs, training)  # noqa: E731
    else:
        call = lambda: model(packed, training=training)  # noqa: E731
    t0 = time.perf_counter()
    out, layers = call(), None
    if case.mode == "moving_stats":
        named = path_of(model)
        out = {
            named[id(v)]: to_numpy(v)
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        }
    elif probed:
        out, layers = output_dict(probe.model_outputs(out)), out
    else:
        out = output_dict(out)
    timings["first_call"] += time.perf_counter() - t0
    if repeat and case.mode == "infer":
        t0 = time.perf_counter()
        call()
        timings["steady_call"] += time.perf_counter() - t0
    return out, layers


@dataclass
class _Capture:
    """What a run collects beyond its cells: every layer's output ('--layers'), a user model's
    weights and inputs, and the layer sketches of the built-in forward cases."""

    layers: dict | None = None
    feeds: dict | None = None
    sketches: dict = field(default_factory=dict)  # every run: the layer sketches it is judged by

    @classmethod
    def asked_by(cls, asked: RunFlags) -> _Capture:
        # A user model's weights and inputs on every run: the judge names the variables changed
        # since its goldens, and its float64 reference needs them (only user models fill them).
        return cls({} if asked.layers else None, {})


def run_model(
    spec, backend: str, asked: RunFlags, timings: dict, cache: Path | None = None, capture: _Capture | None = None
) -> tuple[dict, ModelRecord]:
    """Returns ({'case/path/output': array}, its ModelRecord); `capture` collects every layer's
    output per case ('case/layer') and a user model's weights and inputs ('weights/<path>',
    'inputs/<case>/<name>')."""
    capture = capture or _Capture()
    user = spec.source
    module = None if user else model_module(spec.module)
    arrays: dict[str, np.ndarray] = {}
    record, built, probes = ModelRecord(), {}, dict[str, Probe]()
    cases = spec.cases_for(asked.dtype, asked.training)
    last = {c.builder: c for c in cases}  # a builder's model is let go after its last case
    for case in cases:
        if case.builder not in built:
            built[case.builder] = _build(spec, case, module, asked, timings, cache, record, capture)
        _one_case(spec, case, built[case.builder], backend, asked, timings, (arrays, record, capture, probes))
        if last[case.builder] is case and case is not cases[-1]:  # before the next builder's model is made
            del built[case.builder]
            probes.pop(case.builder, None)
            _release(backend)
    return arrays, record


def _build(spec, case, module, asked: RunFlags, timings: dict, cache, record: ModelRecord, capture) -> tuple:
    """(model, seeded weights) of the case's builder, its BuilderRecord into `record`."""
    model, weights, made = build_model(spec, case, module, asked, timings, cache)
    record.builders[case.builder] = made
    if spec.source and spec.source.kind == "file" and capture.feeds is not None:  # a builder's: drawn from the seed
        capture.feeds.update({golden.key("weights", p): w for (p, _), w in zip(made.weights, weights)})
    return model, weights


def _one_case(spec, case, made: tuple, backend: str, asked: RunFlags, timings: dict, into: tuple) -> None:
    """One case of a built model, every path, into (arrays, record, capture, probes)."""
    import keras

    (model, weights), (arrays, record, capture, probes), user = made, into, spec.source
    inputs = userload.feed(user, model) if user else generate_inputs(case.inputs, spec.seed, case.builder)
    if user and capture.feeds is not None:
        capture.feeds.update({golden.key("inputs", case.name, k): v for k, v in inputs.items()})
    record.inputs_sha256[case.name] = checksum(inputs)
    # float32 values, held in floatx; integer inputs (token ids) stay as they are
    inputs = {k: v.astype(keras.config.floatx()) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    if case.training and record.training is None:
        from keras_parity.run import train_step

        # Every optimizer's full config, defaults included: a default a release changes shows.
        record.training = {"steps": TRAIN_STEPS, **train_step.configs(OPTIMIZERS, case.classifier)}
    sketched = _sketched(spec, case, asked)
    wanted = case.mode != "moving_stats" and (capture.layers is not None or sketched)
    if wanted and case.builder not in probes:
        t0 = time.perf_counter()
        probes[case.builder] = Probe.of(model)
        timings["layers"] += time.perf_counter() - t0
    probe = probes.get(case.builder) if wanted else None
    values = _run_paths(model, weights, case, inputs, backend, asked, timings, spec.seed, arrays, record, probe)
    if probe is not None:
        t0 = time.perf_counter()
        if values is None:  # no path was a model call: one of its own (training cases: their forward pass)
            set_weights(model, weights)
            values = probe.call(model, inputs, training=case.mode != "infer")
        layers, sketches = probe.take(values, keep=capture.layers is not None, sketched=sketched)
        if capture.layers is not None:
            capture.layers.update({golden.key(case.name, k): v for k, v in layers.items()})
        capture.sketches.update({golden.key(case.name, k): v for k, v in sketches.items()})
        timings["layers"] += time.perf_counter() - t0


def _sketched(spec, case, asked: RunFlags) -> bool:
    """Whether a case's layers are sketched for judging (golden/sketch.py): the built-in models'
    forward cases in float32, where each layer's noise is measured (models/noise.json)."""
    return spec.source is None and case.model_outputs and asked.dtype == "float32"


def _run_paths(model, weights, case, inputs, backend, asked: RunFlags, timings, seed, arrays, record, probe=None):
    """Every path of one case into `arrays`, its timing (and with --twice its repeat) into
    `record`; every layer's output from the first path the probe served (None if none did)."""
    layers = None
    for path in case_paths(case, backend, asked.naive, asked.predict_only):
        t0 = time.perf_counter()
        # Fresh weights for every cell: a training-mode call moves BN statistics.
        set_weights(model, weights)
        timings["set_weights"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        first, probed = _run_case(model, case, inputs, path, asked.repeat, timings, seed, probe)
        layers = probed if layers is None else layers
        arrays.update({golden.key(case.name, path, out): value for out, value in first.items()})
        record.cell_seconds[golden.key(case.name, path)] = round(time.perf_counter() - t0, 3)
        if asked.twice:  # the same cell again in this process, from the same weights
            set_weights(model, weights)
            again, _ = _run_case(model, case, inputs, path, False, dict.fromkeys(timings, 0.0), seed, probe)
            record.twice_max_ulp[golden.key(case.name, path)] = max_ulp(first, again)
    return layers


def _start(backend: str, asked: RunFlags, run: BackendRun) -> tuple[str, dict | None] | str:
    """Import Keras on `backend` with the run's knobs and dtype: (device, gpu), or why not."""
    try:
        import keras  # (the backend is imported here, once)

        run.knobs = knobs.after_import(backend, tf32=asked.tf32)
        run.knobs["lstm_use_cudnn"] = "auto" if asked.lstm_cudnn else "off"
        if asked.dtype.startswith("mixed_"):
            keras.config.set_dtype_policy(asked.dtype)
        else:
            keras.config.set_floatx(asked.dtype)
        device, gpu = knobs.device_info(backend)
    except Exception as exc:  # an import that fails is reported, the other backends go on
        run.import_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return f"import failed: {run.import_error}"
    if asked.device != "cpu" and device != "gpu":
        run.device_error = f"a GPU was asked for (--device {asked.device}) but {backend} sees none"
        return run.device_error
    return device, gpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", required=True, choices=sorted(PATHS))
    ap.add_argument("--model", action="append", choices=builtin_registry().builtin)
    ap.add_argument("--user-model", action="append", default=[], help="a user model's usermodel.Source, as JSON")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path)
    flags.add_arguments(ap)  # what the launcher asks for (keras_parity/run/flags.py)
    args = ap.parse_args(argv)
    parent.watch()  # ends with the launcher, even one killed with SIGKILL
    backend, out, asked = args.backend, args.out, flags.from_namespace(args)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    env = knobs.before_import(backend, args.cache_dir and args.cache_dir / "jax", asked.dtype)
    run = BackendRun(backend, env=env, dtype=asked.dtype)
    timings = dict.fromkeys(("import", "build", "set_weights", "first_call", "steady_call", "training", "layers"), 0.0)
    started = _start(backend, asked, run)
    if isinstance(started, str):
        write_run(out, run)
        print(f"{backend}: {started}", file=sys.stderr)
        return 2
    if asked.patch:  # the user's change to Keras, in this process's memory only (`parity --patch`)
        runpy.run_path(asked.patch, run_name="keras_parity_patch")
    timings["import"] = time.perf_counter() - t_start
    # The imports' objects live on: frozen, _release's collections skip them (torch: 0.14 s a model)
    gc.freeze()
    run.provenance = Provenance(**envinfo.provenance(*started))
    registry = runner_registry(args.user_model)
    users = [m for m in registry if registry[m].source]
    names = (args.model or ([] if users else registry.builtin)) + users
    specs = {name: registry[name] for name in names}

    def checkpoint(capture: _Capture, partial: bool = True) -> None:
        """The run so far in `out`: the models finished survive a later crash or hang."""
        run.layers, run.feeds, run.sketches = capture.layers or {}, capture.feeds or {}, capture.sketches
        run.partial = partial
        write_run(out, run)

    capture = _run_models(
        specs, asked, timings, args.cache_dir, run, _starting(out / f"{backend}.progress"), checkpoint
    )
    if asked.watch:  # the watch list's reproducers, after the models (keras_parity/watch)
        run.watch = watch.observe(backend)
    if asked.plants:  # planted changes, after the models (keras_parity/run/plant.py)
        run.planted = plant.run(specs, backend, asked, args.cache_dir, Path(asked.plants))
    timings["total"] = time.perf_counter() - t_start
    run.timings, run.peak_rss_mb = timings, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB
    checkpoint(capture, partial=False)
    return 0


def _starting(progress: Path):
    """Told each model before it starts: the harness names the model a crashed or hung process
    was on (<backend>.progress), and reads its log from the line marking the model's start."""

    def on_model(name: str) -> None:
        progress.write_text(name)
        print(MODEL_MARKER.format(model=name), file=sys.stderr, flush=True)

    return on_model


def _run_models(specs, asked: RunFlags, timings, cache, run: BackendRun, on_model=None, on_done=None) -> _Capture:
    """Every model in turn into `run` (its outputs, records and errors), what it captured
    returned; one that fails is recorded in run.errors and the rest go on. `on_model(name)` is
    told each model before it starts, `on_done(capture)` after each but the last (the caller
    writes the whole run then)."""
    capture = _Capture.asked_by(asked)
    for i, (name, spec) in enumerate(specs.items()):
        if on_model:
            on_model(name)
        _run_one(name, spec, asked, timings, cache, run, capture)
        if on_done and i < len(specs) - 1:
            on_done(capture)
    return capture


def _run_one(name, spec, asked: RunFlags, timings, cache, run: BackendRun, capture: _Capture) -> None:
    """One model into `run` and `capture`, or its error into run.errors."""
    backend, mine = run.backend, _Capture.asked_by(asked)
    t0 = time.perf_counter()
    try:
        model_arrays, run.models[name] = run_model(spec, backend, asked, timings, cache, mine)
        run.models[name].seconds = round(time.perf_counter() - t0, 2)
    except usermodel.UserModelError as exc:  # already one line with its fix, for the user to make
        run.errors[name] = str(exc)
        run.usage_errors.append(name)
        print(f"{backend}: {exc}", file=sys.stderr)
        return
    except Exception as exc:
        run.errors[name] = one_line(exc, backend, bool(spec.source))
        traceback.print_exc()
        return
    run.arrays.update({golden.key(name, k): v for k, v in model_arrays.items()})
    parts = ((mine.layers, capture.layers), (mine.feeds, capture.feeds), (mine.sketches, capture.sketches))
    for mine_part, all_part in parts:
        if mine_part is not None and all_part is not None:  # both asked for by the same flags
            all_part.update({golden.key(name, k): v for k, v in mine_part.items()})
    _release(backend)


def _release(backend: str) -> None:
    """Free what the last model left: its variables and compiled programs sit in reference
    cycles, and JAX keeps its compiled programs in a cache of its own. Without this, the
    zoo's JAX process under float64 held 20 GB by its eighteenth architecture."""
    gc.collect()
    if backend == "jax":
        import jax

        jax.clear_caches()


if __name__ == "__main__":
    envinfo.exit_fast(main())

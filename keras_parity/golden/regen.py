"""`nox -s golden`: rebuild the float64 references and the float32 snapshots, say what moved.

Everything is computed first, then each model's set is replaced as a whole (golden/commit.py): an
interrupted regeneration leaves its old set or its new one, never a mix; a corrupt one is made anew.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.errors import InfraError
from keras_parity.golden import sketch
from keras_parity.golden.settle import relative_change, settle
from keras_parity.judge.numerics import ulp_distance
from keras_parity.reference import UnsupportedLayer, reference_gaps
from keras_parity.reference import evaluate as reference_eval
from keras_parity.reference import training as training_reference
from keras_parity.registry import usermodel, usernoise
from keras_parity.registry.spec import OPTIMIZERS, TRAIN_STEPS, ModelSpec, Registry
from keras_parity.run import training
from keras_parity.run.launch import BackendRun
from keras_parity.run.weights import seeded_case


class RegenError(InfraError):
    pass


# What graph.json keeps of each builder: the graph and what its weights are drawn from (the
# depthwise kernels' fan-ins, when it has any).
GRAPH_KEYS = ("config", "weights", "fan_in", "trainable")


def reference_outputs(
    spec: ModelSpec, builders: dict, optimizers: dict | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The float64 reference for every case of a model, keys '<case>/<output>', and the layer
    sketches of its forward cases, '<case>/<layer>' (golden/sketch.py). `optimizers`: the
    training path's configs as Keras reported them (run/train_step.configs)."""
    out, layers = {}, {}
    for case in spec.cases:
        b = builders[case.builder]
        weights, inputs = seeded_case(spec, case, b)
        if case.training:
            shape = (next(iter(inputs.values())).shape[0], *b["output_shape"][1:])
            tgt = training.target(spec.seed, case.builder, shape, case.classifier)
            res = training_reference.reference(
                case.mode, b["config"], weights, b["trainable"], inputs, tgt, case.classifier, TRAIN_STEPS,
                (optimizers or {}).get(case.mode), loss=(optimizers or {}).get("loss"),
            )  # fmt: skip
            out.update({golden.key(case.name, k): v for k, v in training.sample(res).items()})
            continue
        forward = case.mode != "moving_stats"
        res = reference_eval(b["config"], weights, inputs, training=case.mode != "infer", capture=forward)
        if forward:
            out[golden.key(case.name, "output")] = res.outputs[0]
            input_layers = {x["name"] for x in b["config"]["layers"] if x["class_name"] == "InputLayer"}
            computed = {k: v for k, v in res.layers.items() if k.split(":")[0] not in input_layers}
            layers.update({golden.key(case.name, k): v for k, v in sketch.sketches(computed).items()})
        else:
            out.update({golden.key(case.name, k): v for k, v in res.updated.items()})
    return out, layers


def user_reference(
    model: str, builders: dict, feeds: dict, cases: list[str], weight_scale: dict | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """A user model's float64 reference from the weights and inputs its runner used, or, for a
    model with layers the reference lacks, none: ({}, the cross-backend fallback's record).
    `cases`: the case names; `weight_scale`: its spec's."""
    (b,) = builders.values()
    gaps = reference_gaps(b["config"])
    weights = usermodel.model_weights(model, b, feeds, weight_scale) if not gaps else {}
    out = {}
    for case in cases:
        if gaps:
            break
        inputs = usermodel.feed_part(feeds, model, f"inputs/{case}")
        try:
            res = reference_eval(b["config"], weights, inputs, training=False)
        except UnsupportedLayer as exc:
            gaps = [str(exc)]
            break
        out.update({golden.key(case, golden.output(i)): o for i, o in enumerate(res.outputs)})
    if gaps:
        return {}, {"kind": "cross-backend", "missing": gaps}
    return out, {"kind": "float64"}


def _describe_change(old: dict | None, new: dict) -> list[str]:
    if old is None:
        return ["new"]
    lines = _describe_keys(old, new)
    added, removed = set(new) - set(old), set(old) - set(new)
    # Many keys come and go at once when a case is added (ResNet50's training path: 200+):
    # one line per case and output group.
    for what, keys in (("added", added), ("removed", removed)):
        by_group: dict[str, int] = {}
        for k in keys:
            parts = k.split(golden.SEP)
            cut = next((i + 1 for i, p in enumerate(parts) if p in training.GROUPS), len(parts))
            head = golden.key(*parts[:cut])
            by_group[head] = by_group.get(head, 0) + 1
        lines += [f"{g}: {what}" + (f" ({n} arrays)" if n > 1 else "") for g, n in sorted(by_group.items())]
    return lines


def _describe_keys(old: dict, new: dict) -> list[str]:
    lines = []
    for key in sorted(set(old) & set(new)):
        if old[key].shape != new[key].shape or old[key].dtype != new[key].dtype:
            lines.append(f"{key}: {old[key].dtype}{old[key].shape} -> {new[key].dtype}{new[key].shape}")
        elif not np.array_equal(old[key], new[key], equal_nan=True):
            d = np.abs(old[key].astype(np.float64) - new[key])
            if new[key].dtype == np.float32:
                extra = f", max {int(ulp_distance(old[key], new[key]).max())} ulp"
            else:
                extra = f", {relative_change(old[key], new[key]):.1e} of its largest value"
            lines.append(f"{key}: max abs change {d.max():.2e}{extra}")
    return lines


def _training_configs(model: str, runs: list[BackendRun]) -> dict | None:
    """The optimizer and loss configs Keras reports, which must hold the registry's
    hyperparameters (as float32, the dtype Keras keeps them in): the reference applies them."""
    configs = runs[0].models[model].training
    for kind, hyper in OPTIMIZERS.items():
        if configs is None:
            break
        for key, value in hyper.items():
            got = configs[kind].get(key)
            same = got == value or (
                isinstance(value, float) and got is not None and np.float32(got) == np.float32(value)
            )
            if not same:
                raise RegenError(f"{model}: Keras reports {kind} {key}={got!r}, the registry asks {value!r}")
    for run in runs[1:]:
        _same_defaults(model, runs[0], run, (configs or {}).get("defaults", {}), "training", "defaults")
    return configs


def _same_defaults(model: str, first: BackendRun, run: BackendRun, want: dict, *where: str) -> None:
    """Every backend's Keras must report the same defaults, or the goldens record no single one."""
    got = run.models[model].as_json()
    for key in where:
        got = got.get(key, {})
    for cls in sorted(set(want) | set(got)):
        if want.get(cls) != got.get(cls):
            raise RegenError(
                f"{model}: {first.backend} and {run.backend} report different defaults for {cls}; "
                "their environments run different Keras releases (`nox -s lock` pins one)"
            )


def _builders_agree(model: str, runs: list[BackendRun]) -> dict:
    """Every backend must see the same weights and the same graph, or the reference is moot."""
    first = {n: b.as_json() for n, b in runs[0].models[model].builders.items()}
    for run in runs[1:]:
        other = {n: b.as_json() for n, b in run.models[model].builders.items()}
        for name, b in first.items():
            if other[name]["weights"] != b["weights"]:
                raise RegenError(f"{model}/{name}: {run.backend} lists different weights than {runs[0].backend}")
            if other[name]["weights_sha256"] != b["weights_sha256"]:  # a saved file loaded differently
                raise RegenError(f"{model}/{name}: {run.backend} loaded other weight values than {runs[0].backend}")
            _same_defaults(model, runs[0], run, b.get("defaults", {}), "builders", name, "defaults")
    return first


# What a snapshot's JSON keeps of its run: the versions and knobs, and the machine facts its
# platform key is a digest of (keras_parity/run/machine.py).
_SNAPSHOT_META = (
    "backend", "device", "gpu_model", "gpu", "cpu_model", "cpu", "isa_cap", "platform", "versions", "knobs",
)  # fmt: skip


def _snapshot_writes(model: str, runs: list[BackendRun], mroot: Path, log) -> list[tuple[Path, dict]]:
    writes: list[tuple[Path, dict]] = []
    for run in runs:
        arrays = golden.part(run.arrays, model)
        assert run.platform is not None, "a run with a model's outputs has imported its library"
        path = golden.snapshot_path(model, run.platform, run.backend, mroot)
        old = _old(path, log)
        for line in _describe_change(old, arrays):
            log(f"  {model} {run.backend} snapshot ({run.platform}): {line}")
        snap_meta = {k: run.header().get(k) for k in _SNAPSHOT_META}
        writes += [(path, arrays), (path.with_suffix(".json"), snap_meta)]
    return writes


def _not_the_goldens(model: str, ref_json: Path, runs: list[BackendRun]) -> str | None:
    """Why these runs cannot give snapshots of the goldens' model (None when they can)."""
    if not ref_json.exists():
        return f"no goldens yet in {ref_json.parent}; make them with `nox -s golden` first"
    recorded, run = golden.read_reference_json(ref_json), runs[0]
    for name, b in _builders_agree(model, runs).items():
        if recorded.get("builders", {}).get(name, {}).get("weights_sha256") != b["weights_sha256"]:
            return f"the weights of '{name}' are not the goldens' ones; regenerate everything with `nox -s golden`"
    if recorded.get("inputs_sha256") != run.models[model].inputs_sha256:
        return "the inputs are not the goldens' ones; regenerate everything with `nox -s golden`"
    return None


def regenerate(
    runs: dict[str, BackendRun],
    models: list[str],
    registry: Registry,
    root: Path = golden.GOLDEN,
    log=print,
    snapshots_only=False,
    noise_runs: dict[str, BackendRun] | None = None,
) -> int:
    """Returns the number of problems (0 = all written). snapshots_only: write this platform's
    snapshots only, from runs whose weights and inputs are the goldens' own. `registry` holds
    the models' specs; `noise_runs`: user models run again under an ISA cap (usernoise.py)."""
    sets: list[tuple[Path, list[tuple[Path, dict]]]] = []
    problems = 0
    for model in models:
        mdir = usermodel.root_of(registry[model], root) / model
        for line in golden.recover(mdir.parent, model):  # what a stopped regeneration left
            log(f"  {model}: {line}, left by a stopped `golden`")
        capped = [r for r in (noise_runs or {}).values() if not r.error and model in r.models]
        model_writes, model_problems = _model_writes(model, registry[model], runs, root, log, snapshots_only, capped)
        sets.append((mdir, model_writes))
        problems += model_problems
    for mdir, model_writes in sets:
        _write_set(mdir, model_writes, root, log)
    for run in runs.values():
        if run.error:
            log(f"[red]{run.backend}: {run.error}; its snapshots are left as they were[/]")
            problems += 1
    return problems


def _write_set(mdir: Path, writes: list[tuple[Path, dict]], root: Path, log) -> None:
    """One model's files, its set replaced as a whole; says which JSON files are new or changed."""
    files = {path.relative_to(mdir).as_posix(): golden.file_bytes(path, content) for path, content in writes}
    shown = mdir.relative_to(root) if mdir.is_relative_to(root) else mdir
    for rel, how in golden.replace_set(mdir, files).items():
        if rel.endswith(".json"):
            log(
                f"  {shown / rel}: {how if how == 'new' else 'metadata changed (versions, knobs, checksums or shapes)'}"
            )


def _old(path: Path, log) -> dict[str, np.ndarray] | None:
    """A file's arrays before this regeneration; None when it has none or is unreadable (written anew)."""
    try:
        return golden.read_npz(path) if path.exists() else None
    except golden.GoldenError as exc:
        log(f"  {exc.problem}: written anew")
    return None


def _model_writes(model, spec: ModelSpec, runs: dict, root: Path, log, snapshots_only: bool, capped: list):
    """(the files to write for one model, the number of problems found), nothing written yet."""
    done = [r for r in runs.values() if not r.error and model in r.models]
    # The reference comes from the Keras runs; a native twin (--twins) only gets its snapshot.
    ok = [r for r in done if not r.twin]
    problems = 0
    for r in runs.values():
        if not r.error and model in r.errors:
            log(f"[red]{r.backend} failed on {model}: {r.errors[model]}; its snapshot is left as it was[/]")
            problems += 1
    if not ok:
        log(f"[red]{model}: no backend produced it; its goldens are left as they were[/]")
        return [], problems + 1
    mroot = usermodel.root_of(spec, root)
    if snapshots_only:  # the references stay; only runs of the goldens' own model may add snapshots
        try:
            stale = _not_the_goldens(model, golden.reference_path(model, mroot).with_suffix(".json"), ok)
        except RegenError as exc:
            stale = str(exc)
        except golden.GoldenError as exc:
            stale = f"{exc.problem}; make the whole set anew with `golden` without --snapshots-only"
        if stale:
            log(f"[red]{model}: {stale}; its snapshots are left as they were[/]")
            return [], problems + 1
        return _snapshot_writes(model, done, mroot, log), problems
    try:
        writes = _reference_writes(model, spec, ok, mroot, log, capped)
    except Exception as exc:
        log(f"[red]{model}: {type(exc).__name__}: {exc}; its goldens are left as they were[/]")
        return [], problems + 1
    return writes + _snapshot_writes(model, done, mroot, log), problems


def _reference_writes(model: str, spec: ModelSpec, ok: list, mroot: Path, log, capped: list) -> list[tuple[Path, dict]]:
    """The float64 reference, its JSON and the graph it was computed from, for one model; a
    user model's JSON with the float32 noise of `ok` and `capped` (its runs under an ISA cap)."""
    builders = _builders_agree(model, ok)
    configs = _training_configs(model, ok)
    layers: dict[str, np.ndarray] = {}
    if spec.source:
        cases = [c.name for c in spec.cases]
        ref, kind = user_reference(model, builders, ok[0].feeds, cases, spec.weight_scale)
    else:
        (ref, layers), kind = reference_outputs(spec, builders, configs), {"kind": "float64"}
    # The graph and weight list the reference was computed from: localization walks
    # this float64 graph layer by layer, even after the model's code has changed.
    graph = {n: {k: b[k] for k in GRAPH_KEYS if b.get(k) not in (None, {})} for n, b in builders.items()}
    ref_json = {
        "model": model,
        "seed": spec.seed,
        "module": spec.module if not spec.source else usermodel.describe(spec.source),
        "reference": kind,
        "builders": {
            n: {
                "weights_sha256": b["weights_sha256"],
                "config_sha256": b["config_sha256"],
                "n_weights": len(b["weights"]),
                "defaults": b.get("defaults", {}),  # the Keras defaults its layers lean on
            }
            for n, b in builders.items()
        },
        "inputs_sha256": ok[0].models[model].inputs_sha256,
        "outputs": {k: [str(v.dtype), list(v.shape)] for k, v in sorted(ref.items())},
    }
    if configs:
        ref_json["training"] = configs
    if spec.source and kind["kind"] == "float64" and spec.source.rel_l2 is None:
        ref_json["noise"] = usernoise.measured_noise(model, ref, ok + capped)
    ref_path = golden.reference_path(model, mroot)
    ref = _settled(ref_path, ref, f"{model} reference", log)
    if kind["kind"] != "float64":
        log(f"  {model}: no float64 reference ({', '.join(kind['missing'])}): judged across backends")
    writes = [(ref_path, ref), (ref_path.with_suffix(".json"), ref_json), (golden.graph_path(model, mroot), graph)]
    if spec.source and spec.source.kind == "file":  # what a later run's changed weights are named against
        writes.append((golden.weights_path(model, mroot), usermodel.feed_part(ok[0].feeds, model, "weights")))
    if layers:
        layers_path = golden.layers_path(model, mroot)
        writes.append((layers_path, _settled(layers_path, layers, f"{model} layer sketches", log)))
    return writes


def _settled(path: Path, new: dict[str, np.ndarray], what: str, log) -> dict[str, np.ndarray]:
    """`new` with the arrays that agree with the file's to float64 rounding kept as they are
    (golden/settle.py); says what moved beyond that, and by how much."""
    old = _old(path, log)
    settled = settle(old, new)
    for line in _describe_change(old, settled.arrays):
        log(f"  {what}: {line}")
    if settled.rounding > 0.0:
        log(
            f"  {what}: {settled.kept} arrays agree to float64 rounding (largest change {settled.rounding:.1e} "
            f"relative, another CPU's BLAS), kept as they were"
        )
    return settled.arrays

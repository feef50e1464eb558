"""`keras-parity repro MODEL/CASE --backend B`: one cell as a folder to hand upstream.

The folder (results/repro/<model>-<case>-<backend>/) holds repro.py, which imports only
keras, numpy and the backend; model.json, the model's Keras config; weights.npz and
inputs.npz, the float32 numbers the suite feeds it; expected.npz, the float64 reference's
outputs from the goldens; suite.json, what the suite measured for the cell; and README.md,
the text of an upstream issue with the script inline. Both texts are filled in from the
files of keras_parity/repro/templates/ (render.py).

The model travels as its config, rebuilt with keras.Model.from_config, not as a .keras file:
the config is what the runner records of the model it ran (RunFlags(configs=True)) and what
the float64 reference walks, so nothing is saved by a second code path; it is plain JSON
that rebuilds the same functional graph on all three backends, with no saved-variable layout
to match; and the weights are set as the runner sets them, one model.set_weights list in
model.weights order, so every variable holds the suite's numbers on whichever backend loads
it. Weights and inputs are drawn again here from the seeds (a builder's or a built-in
model's) or taken from what the runner fed a saved model, and checked against the runner's
checksums. The suite's numbers come from the same run, judged as `parity` judges it.

Forward cases only (predict, the eager call, a training-mode call): a training case runs an
optimizer's steps through compile and train_on_batch, which a short script would have to
copy from run/train_step.py; it is refused by name.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.errors import UsageError
from keras_parity.exitcodes import Exit
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS, ModelSpec, Registry
from keras_parity.report import progress
from keras_parity.repro import render
from keras_parity.run.envinfo import ISA_CAP_ENV
from keras_parity.run.flags import RunFlags
from keras_parity.run.modelio import PATHS
from keras_parity.run.weights import checksum, seeded_case


class ReproError(UsageError):
    """A cell that cannot be written as a reproducer; the message names the thing and the fix."""

    def __init__(self, message: str, code: int = Exit.USAGE):
        super().__init__(message)
        self.exit_code = Exit(code)


def pick_cell(cell: str | None, models: list[str], registry: Registry) -> tuple[str, str]:
    """(model, case) of the command line: 'model/case', or for one user model its case alone
    (or nothing: its only case); `registry` holds the models' specs."""
    model, _, case = (cell or "").rpartition("/")
    users = [m for m in models if registry[m].source]
    if users:
        if model and model != users[0]:
            raise ReproError(
                f"cell '{cell}' names model '{model}' but the model given is {users[0]}; write {users[0]}/CASE"
            )
        model = users[0]
    elif not model:
        raise ReproError(f"name the cell as MODEL/CASE, e.g. lstm/lstm (got '{cell or ''}')")
    if model not in registry:
        raise ReproError(f"unknown model '{model}'; choose from: {', '.join(registry.builtin)}")
    spec = registry[model]
    case = case or (spec.cases[0].name if len(spec.cases) == 1 else "")
    names = [c.name for c in spec.cases]
    if case not in names:
        raise ReproError(f"unknown case '{case}' of {model}; choose from: {', '.join(names)}")
    mode = spec.case(case).mode
    if mode not in ("infer", "train"):
        what = (
            "a training case (an optimizer's steps)"
            if spec.case(case).training
            else "BatchNormalization's moving statistics"
        )
        forward = [c.name for c in spec.cases if c.mode in ("infer", "train")]
        raise ReproError(
            f"{model}/{case} is {what}; reproducers cover forward cases: {', '.join(f'{model}/{c}' for c in forward)}"
        )
    return model, case


def _expected(model: str, spec: ModelSpec, case: str, root: Path) -> dict[str, np.ndarray]:
    path = golden.reference_path(model, usermodel.root_of(spec, root))
    if not path.exists():
        how = f"`nox -s golden -- {usermodel.command_args(spec.source)}`" if spec.source else "`nox -s golden`"
        raise ReproError(f"no float64 reference for {model} at {path}; create it with {how}")
    ref = golden.part(golden.read_npz(path), case)
    if not ref:
        raise ReproError(f"{path} has no outputs of case '{case}'; regenerate it with `nox -s golden`")
    return ref


def _feeds(model: str, spec: ModelSpec, case, record: dict, run) -> tuple[dict, dict]:
    """(weights by path in model order, inputs by name) as the runner fed them."""
    if spec.source:
        weights = usermodel.model_weights(model, record, run.feeds, spec.weight_scale)
        inputs = usermodel.feed_part(run.feeds, model, golden.key("inputs", case.name))
    else:
        weights, inputs = seeded_case(spec, case, record)
    weights = {p: weights[p] for p, _ in record["weights"]}
    if checksum(list(weights.values())) != record["weights_sha256"]:
        raise ReproError(f"the weights drawn for {model} differ from its runner's; rerun with the same checkout", 1)
    return weights, inputs


def _custom_modules(config, source) -> list[Path]:
    """The source files of the model's own layer classes (a module outside keras in the
    config, or --custom-objects), copied beside the script so that it needs nothing else."""
    names, stack = set(), [config]
    while stack:  # every nested dict: layers of nested models, a custom layer's sublayers
        node = stack.pop()
        if isinstance(node, dict):
            mod = node.get("module")
            if isinstance(mod, str) and "class_name" in node and mod.split(".")[0] not in ("keras", "builtins"):
                names.add(mod)
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    if source and source.custom_objects:
        names.add(source.custom_objects)
    if source and source.cwd not in sys.path:
        sys.path.insert(0, source.cwd)
    files = []
    for name in sorted(names):
        found = importlib.util.find_spec(name)
        if found is None or not found.origin or not found.origin.endswith(".py"):
            raise ReproError(
                f"module '{name}', which defines layers of the model, is not importable; run from its folder", 1
            )
        files.append(Path(found.origin))
    return files


def write(
    model: str, spec: ModelSpec, case_name: str, backend: str, run, cell_results, folder: Path, root: Path
) -> Path:
    """The reproducer folder of one cell of the model `spec` from its backend's run (RunFlags(configs=True))."""
    case = spec.case(case_name)
    expected = _expected(model, spec, case_name, root)
    record = run.models[model].builders[case.builder].as_json()
    weights, inputs = _feeds(model, spec, case, record, run)
    config = record["config"]
    names = config["input_layers"]
    as_list = bool(names) and isinstance(names[0], list)
    order = [n[0] for n in names] if as_list else [names[0]]
    paths = ["call"] if case.mode == "train" else list(PATHS[backend])
    custom = _custom_modules(config, spec.source)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(config, indent=1) + "\n")
    np.savez(folder / "weights.npz", **weights)  # in model.weights order: set_weights takes them so
    np.savez(folder / "inputs.npz", **{n: inputs[n] for n in order})
    np.savez(folder / "expected.npz", **expected)
    for f in custom:
        shutil.copy(f, folder / f.name)
    env = {k: v for k, v in run.env.items() if k not in ("KERAS_BACKEND", "JAX_COMPILATION_CACHE_DIR")}
    env.pop(ISA_CAP_ENV, None)
    normalization = '"Normalization"' in json.dumps(config)
    script = render.script(
        model,
        case_name,
        backend,
        paths,
        case.mode == "train",
        order,
        as_list,
        [f.stem for f in custom],
        env,
        normalization,
    )
    (folder / "repro.py").write_text(script)
    measured = {
        c.path: {
            "status": c.status,
            "tolerance": c.tol.rel_l2 if c.tol else None,
            "outputs": {k: {"rel_l2": m.rel_l2, "max_abs": m.max_abs} for k, m in c.outputs.items()},
            "problems": c.problems,
        }
        for c in sorted(cell_results, key=lambda c: paths.index(c.path) if c.path in paths else len(paths))
    }
    suite = {
        "cell": f"{model}/{case_name}", "backend": backend, "measured": measured,
        "versions": run.versions, "device": run.provenance and run.provenance.device,
        "cpu": run.provenance and run.provenance.cpu_model, "platform": run.platform,
        "git_commit": run.provenance and run.provenance.git_commit,
    }  # fmt: skip
    (folder / "suite.json").write_text(json.dumps(suite, indent=1, sort_keys=True) + "\n")
    (folder / "README.md").write_text(render.readme(suite, config, script, [f.name for f in custom]))
    return folder


def _weights_not_the_goldens(model: str, spec: ModelSpec, runs: dict, root: Path) -> str | None:
    """The first backend whose run of `model` loaded other weights than its goldens', or None."""
    recorded = golden.read_json(golden.reference_path(model, usermodel.root_of(spec, root)).with_suffix(".json"))
    for backend, r in runs.items():
        for name, b in (r.models[model].builders if model in r.models else {}).items():
            if recorded.get("builders", {}).get(name, {}).get("weights_sha256") != b.weights_sha256:
                return backend
    return None


def run(args, selection, console) -> int:
    """The `repro` command: judge the cell as `parity` does, then write its folder per backend;
    `selection`: the models (keras_parity/registry/select.py)."""
    from keras_parity.judge.evaluate import evaluate
    from keras_parity.run import service

    backends = args.backend or []
    unknown = [b for b in backends if b not in BACKENDS]
    if not backends or unknown:
        what = f"unknown backend '{unknown[0]}'" if unknown else "no backend named"
        raise ReproError(f"{what}; pass --backend with one of {', '.join(BACKENDS)}")
    registry, root = selection.registry, selection.golden_dir
    model, case = pick_cell(args.cell, selection.models, registry)
    spec = registry[model]
    _expected(model, spec, case, root)
    plan = service.RunPlan(
        backends=backends, models=[model], registry=registry, flags=RunFlags(configs=True, training=False),
        golden_dir=root,
    )  # fmt: skip
    with progress.status(console, f"running {model} on {', '.join(backends)}"):
        runs = service.run(plan, into=args.out / "raw", log=console.print)
    changed = _weights_not_the_goldens(model, spec, runs, root)
    if changed:
        raise ReproError(
            f"the weights of {model} on {changed} are not the ones its goldens were made from, so a "
            "reproducer would present your own change as a backend's departure; restore the model, or "
            "regenerate its goldens if the change is intended"
        )
    cells = evaluate(runs, [model], registry, root, training=False)
    failed = crashed = 0
    for b, r in runs.items():
        error = r.failure(model)
        if error or model not in r.models:
            console.print(f"error: {b} did not run {model}: {error}", soft_wrap=True)
            crashed += 1
            continue
        order = [*PATHS[b], "call"]  # as the script runs them
        mine = sorted((c for c in cells if c.backend == b and c.case == case), key=lambda c: order.index(c.path))
        try:
            folder = write(model, spec, case, b, r, mine, args.out / f"{model}-{case}-{b}", root)
        except (ReproError, usermodel.UserModelError) as exc:
            console.print(f"error: {exc}", soft_wrap=True)
            failed += 1
            continue
        for c in mine:
            for k, m in c.outputs.items():
                console.print(
                    f"{c.status} {model}/{case} {b} {c.path} {k}: rel L2 {m.rel_l2:.4e}, max abs {m.max_abs:.4e}"
                )
        console.print(f"reproducer in {folder}: python {folder / 'repro.py'}", soft_wrap=True)
    # a backend that did not run is the machine's; a reproducer that could not be written is not
    return Exit.INFRA if crashed else Exit.REGRESSION if failed else Exit.OK

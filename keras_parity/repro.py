"""`keras-parity repro MODEL/CASE --backend B`: one cell as a folder to hand upstream.

The folder (results/repro/<model>-<case>-<backend>/) holds repro.py, which imports only
keras, numpy and the backend; model.json, the model's Keras config; weights.npz and
inputs.npz, the float32 numbers the suite feeds it; expected.npz, the float64 reference's
outputs from the goldens; suite.json, what the suite measured for the cell; and README.md,
the text of an upstream issue with the script inline.

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
from keras_parity.exitcodes import Exit
from keras_parity.models.registry import REGISTRY
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS
from keras_parity.report import progress
from keras_parity.run.envinfo import ISA_CAP_ENV
from keras_parity.run.flags import RunFlags
from keras_parity.run.modelio import PATHS
from keras_parity.run.weights import checksum, seeded_case


class ReproError(Exception):
    """A cell that cannot be written as a reproducer; the message names the thing and the fix."""

    def __init__(self, message: str, code: int = Exit.USAGE):
        super().__init__(message)
        self.code = code


def pick_cell(cell: str | None, models: list[str]) -> tuple[str, str]:
    """(model, case) of the command line: 'model/case', or for one user model its case alone
    (or nothing: its only case)."""
    model, _, case = (cell or "").rpartition("/")
    users = [m for m in models if REGISTRY[m].source]
    if users:
        if model and model != users[0]:
            raise ReproError(
                f"cell '{cell}' names model '{model}' but the model given is {users[0]}; write {users[0]}/CASE"
            )
        model = users[0]
    elif not model:
        raise ReproError(f"name the cell as MODEL/CASE, e.g. lstm/lstm (got '{cell or ''}')")
    if model not in REGISTRY:
        raise ReproError(f"unknown model '{model}'; choose from: {', '.join(REGISTRY.builtin)}")
    spec = REGISTRY[model]
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


def _expected(model: str, case: str, root: Path) -> dict[str, np.ndarray]:
    spec = REGISTRY[model]
    path = golden.reference_path(model, usermodel.root_of(spec, root))
    if not path.exists():
        how = f"`nox -s golden -- {usermodel.command_args(spec.source)}`" if spec.source else "`nox -s golden`"
        raise ReproError(f"no float64 reference for {model} at {path}; create it with {how}")
    ref = golden.part(golden.read_npz(path), case)
    if not ref:
        raise ReproError(f"{path} has no outputs of case '{case}'; regenerate it with `nox -s golden`")
    return ref


def _feeds(model: str, case, record: dict, run) -> tuple[dict, dict]:
    """(weights by path in model order, inputs by name) as the runner fed them."""
    spec = REGISTRY[model]
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


def write(model: str, case_name: str, backend: str, run, cell_results, folder: Path, root: Path) -> Path:
    """The reproducer folder of one cell from its backend's run (RunFlags(configs=True))."""
    spec = REGISTRY[model]
    case = spec.case(case_name)
    expected = _expected(model, case_name, root)
    record = run.models[model].builders[case.builder].as_json()
    weights, inputs = _feeds(model, case, record, run)
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
    script = _script(
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
    (folder / "README.md").write_text(_readme(suite, config, script, [f.name for f in custom]))
    return folder


_HEADER = '''"""{model}/{case}: Keras on {backend} against a float64 reference (keras-parity reproducer).

Run: python repro.py (KERAS_BACKEND in the environment runs it on another backend).
"""

BACKEND = {quoted}  # the backend the suite measured
PATHS = {paths}  # predict: model.predict_on_batch(x); eager/call: model(x, training=TRAINING)
TRAINING = {training!r}
INPUTS = {inputs}  # inputs.npz's arrays, in the model's input order
AS_LIST = {as_list!r}  # the model takes a list of inputs
CUSTOM = {custom}  # modules beside this script that define the model's own layers
# What the suite sets before the backend is imported: one compute thread, deterministic kernels.
SETTINGS = {env}
'''

_BODY = """
import importlib
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", BACKEND)
for name, value in SETTINGS.items():
    os.environ.setdefault(name, value)

import keras  # after KERAS_BACKEND and the settings are set
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
for module in CUSTOM:
    importlib.import_module(module)  # registers the model's own layer classes

backend = keras.backend.backend()
# The suite's settings after import: one thread, deterministic kernels, float32 matmuls in float32.
if backend == "tensorflow":
    import tensorflow as lib

    lib.config.threading.set_intra_op_parallelism_threads(1)
    lib.config.threading.set_inter_op_parallelism_threads(1)
    lib.config.experimental.enable_op_determinism()
elif backend == "jax":
    import jax as lib

    lib.config.update("jax_default_matmul_precision", "highest")
else:
    import torch as lib

    lib.set_num_threads(1)
    lib.set_num_interop_threads(1)
    lib.use_deterministic_algorithms(True)

model = keras.Model.from_config(json.loads((HERE / "model.json").read_text()))
with np.load(HERE / "weights.npz") as w:
    model.set_weights([w[k] for k in w.files])  # stored in model.weights order
{normalization}with np.load(HERE / "inputs.npz") as z:
    xs = [z[n] for n in INPUTS]
x = xs if AS_LIST else xs[0]
with np.load(HERE / "expected.npz") as e:
    expected = {{k: e[k] for k in e.files}}

versions = [("python", platform.python_version()), ("numpy", np.__version__), ("keras", keras.__version__)]
print(", ".join(f"{{k}} {{v}}" for k, v in [*versions, (backend, lib.__version__)]))
for path in PATHS:
    y = model.predict_on_batch(x) if path == "predict" else model(x, training=TRAINING)
    for i, out in enumerate(keras.tree.flatten(y)):
        key = "output" if i == 0 else f"output:{{i}}"
        got = np.asarray(keras.ops.convert_to_numpy(out)).astype(np.float64)
        diff = np.abs(got - expected[key])
        rel = np.linalg.norm(diff) / np.linalg.norm(expected[key])
        print(f"{{backend}} {{path}} {{key}}: rel L2 {{rel:.4e}}, max abs {{diff.max():.4e}} (vs float64)")
"""

_NORMALIZATION = """# set_weights leaves a Normalization layer's statistics at their build-time values; loading
# a saved model derives them from its weights, and so does the suite.
for layer in model.layers:
    if isinstance(layer, keras.layers.Normalization):
        layer.finalize_state()
"""


def _script(model, case, backend, paths, training, inputs, as_list, custom, env, normalization) -> str:
    d = json.dumps  # Python literals of strings and lists of strings, in double quotes
    settings = "{\n" + "".join(f"    {d(k)}: {d(v)},\n" for k, v in sorted(env.items())) + "}"
    head = _HEADER.format(
        model=model, case=case, backend=backend, quoted=d(backend), paths=d(paths), training=training,
        inputs=d(inputs), as_list=as_list, custom=d(custom), env=settings,
    )  # fmt: skip
    return head + _BODY.format(normalization=_NORMALIZATION if normalization else "")


def _readme(suite: dict, config: dict, script: str, custom: list[str]) -> str:
    v, backend = suite["versions"], suite["backend"]
    lib_version = v.get(backend) or v.get(f"{backend}-cpu", "?")
    layers = [layer["class_name"] for layer in config.get("layers", []) if layer["class_name"] != "InputLayer"]
    rows = [
        f"| {path} | {out} | {m['rel_l2']:.4e} | {m['max_abs']:.4e} | {c['tolerance'] or 0:.1e} | {c['status']} |"
        for path, c in suite["measured"].items()
        for out, m in c["outputs"].items()
    ]
    found = sorted({f"- {p}" for c in suite["measured"].values() if c["status"] != "pass" for p in c["problems"]})
    calls = {
        "predict": "`model.predict_on_batch(x)`",
        "eager": "`model(x, training=False)`",
        "call": "`model(x, training=True)`",
    }
    install = f"pip install keras=={v.get('keras')} numpy=={v.get('numpy')} {backend}=={lib_version}"
    files = "repro.py, model.json (keras.Model.from_config), weights.npz, inputs.npz, expected.npz" + (
        ", " + ", ".join(custom) + " (the model's own layers)" if custom else ""
    )
    return f"""# {suite["cell"]} on {backend}: float32 outputs against a float64 reference

**What is compared.** A Keras 3 functional model of {len(layers)} layers ({", ".join(sorted(set(layers)))})
on the {backend} backend, called as {" and ".join(calls[p] for p in suite["measured"])}, against
the same model computed in float64 (keras-parity's independent NumPy reference) from the same
float32 weights and inputs. The relative L2 error is ||y - y64|| / ||y64||.

**What the suite measured** ({suite["device"]}, {suite["cpu"]}):

| path | output | rel L2 | max abs | tolerance (rel L2) | verdict |
|---|---|---|---|---|---|
{chr(10).join(rows)}
{chr(10) + "The suite's findings:" + chr(10) + chr(10).join(found) + chr(10) if found else ""}
**Versions.** python {v.get("python")}, numpy {v.get("numpy")}, keras {v.get("keras")}, {backend} {lib_version}.

**How to run.**

```
{install}
python repro.py
```

It prints the versions, then the relative L2 error and the largest absolute error against
float64 for each call. Files: {files}.

```python
{script.rstrip()}
```
"""


def _weights_not_the_goldens(model: str, runs: dict, root: Path) -> str | None:
    """The first backend whose run of `model` loaded other weights than its goldens', or None."""
    meta = golden.read_json(golden.reference_path(model, usermodel.root_of(REGISTRY[model], root)).with_suffix(".json"))
    for backend, r in runs.items():
        for name, b in (r.models[model].builders if model in r.models else {}).items():
            if meta.get("builders", {}).get(name, {}).get("weights_sha256") != b.weights_sha256:
                return backend
    return None


def run(args, console) -> int:
    """The `repro` command: judge the cell as `parity` does, then write its folder per backend."""
    from keras_parity.judge.evaluate import evaluate
    from keras_parity.run.launch import run_backends

    backends = args.backend or []
    unknown = [b for b in backends if b not in BACKENDS]
    if not backends or unknown:
        what = f"unknown backend '{unknown[0]}'" if unknown else "no backend named"
        console.print(f"error: {what}; pass --backend with one of {', '.join(BACKENDS)}", soft_wrap=True)
        return Exit.USAGE
    try:
        model, case = pick_cell(args.cell, args.models)
        _expected(model, case, args.golden_dir)
    except (ReproError, golden.GoldenError) as exc:
        console.print(f"error: {exc}", soft_wrap=True)
        return getattr(exc, "code", Exit.USAGE)
    with progress.status(console, f"running {model} on {', '.join(backends)}"):
        runs = run_backends(
            backends, [model], args.out / "raw", RunFlags(configs=True, training=False), log=console.print
        )
    changed = _weights_not_the_goldens(model, runs, args.golden_dir)
    if changed:
        console.print(
            f"error: the weights of {model} on {changed} are not the ones its goldens were made from, so a "
            "reproducer would present your own change as a backend's departure; restore the model, or "
            "regenerate its goldens if the change is intended",
            soft_wrap=True,
        )
        return Exit.USAGE
    cells = evaluate(runs, [model], args.golden_dir, write_obtained=False, training=False)
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
            folder = write(model, case, b, r, mine, args.out / f"{model}-{case}-{b}", args.golden_dir)
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

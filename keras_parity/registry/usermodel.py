"""Your own models: a saved .keras file or a builder by import path, run like a built-in model.

This side imports no Keras: it checks the files and makes the ModelSpec a registry holds
under the model's name (keras_parity/registry/select.py); each backend's runner loads the
model, its weights and its inputs with keras_parity/registry/userload.py.
A .keras file keeps its trained weights; a builder's model gets seeded weights, because
every backend would initialise it with numbers of its own.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.errors import UsageError
from keras_parity.registry.spec import Case, ModelSpec, Source, Tol

# Any model of a few layers stays within ~1e-6 in float32; a user's model may be deeper, with
# trained weights whose products reach further into float32 rounding, so the margin is wider
# than the built-in models'. A one-value weight change, a layer option or a kernel that
# differs between backends lands well above (docs/own-models.md).
USER_TOL = Tol(1e-4, 1e-5, 1e-3, "a model of unknown depth in float32; override with --rel-l2")
USER_SEED = 7001
DRAWN_BATCH = 4


class UserModelError(UsageError):
    """A user model, its inputs or its custom objects cannot be used; the message says the fix."""


# What a golden folder holds beside the models' folders (paths.DRIFT: the drift history).
RESERVED_NAMES = ("drift",)


def from_file(
    path: Path,
    inputs: Path | None,
    custom_objects: str | None,
    golden: Path | None,
    rel_l2=None,
    allow_nonfinite: bool = False,
) -> Source:
    """A .keras file's Source; its inputs, when given, checked against the inputs its config declares."""
    path = Path(path).absolute()
    name = model_name(path)
    check_model_file(path)
    if inputs is not None:
        check_inputs_file(Path(inputs), allow_nonfinite)
        specs = file_input_specs(path)
        if specs is not None:
            check_feed(_load_npz(Path(inputs)), specs, Path(inputs).name, name)
    root = Path(golden) if golden else path.parent / "golden"
    return Source(name, "file", str(path), str(root.absolute()), _abs(inputs), custom_objects, str(Path.cwd()), rel_l2)


def from_builder(
    target: str,
    inputs: Path | None,
    custom_objects: str | None,
    golden: Path,
    rel_l2=None,
    allow_nonfinite: bool = False,
) -> Source:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", target):
        raise UserModelError(f"model '{target}' is neither a built-in model nor 'package.module:function'")
    if inputs is not None:
        check_inputs_file(Path(inputs), allow_nonfinite)
    name, root = target.replace(":", "."), str(Path(golden).absolute())
    return Source(name, "builder", target, root, _abs(inputs), custom_objects, str(Path.cwd()), rel_l2)


def _abs(p) -> str | None:
    return None if p is None else str(Path(p).absolute())


def model_name(path: Path) -> str:
    """A model file's name for its golden folder: the file's stem, each character other than a
    letter, digit, '_', '.' or '-' made '_'; a name that would leave the golden folder or take a
    folder the golden folder keeps for itself is refused."""
    name = re.sub(r"[^\w.-]", "_", Path(path).stem, flags=re.ASCII)
    if not name or name.startswith(".") or name.lower() in RESERVED_NAMES:
        why = f"'{name}' is reserved" if name.lower() in RESERVED_NAMES else "a name must not start with '.'"
        raise UserModelError(
            f"model file {path} would name its golden folder '{name}' ({why}); rename the file, e.g. my_model.keras"
        )
    return name


def spec(source: Source) -> ModelSpec:
    tol = USER_TOL if source.rel_l2 is None else Tol(source.rel_l2, USER_TOL.atol, USER_TOL.rtol, "--rel-l2")
    return ModelSpec(
        module="", seed=USER_SEED, cases=(Case("inference", source.name, {}),), tol=tol, source=source,
        weight_scale=dict(source.weight_scale or {}),
    )  # fmt: skip


def spec_of_test(name: str, tol: Tol) -> ModelSpec:
    """The spec of a model checked by the pytest fixture: one inference case, the test's tolerance."""
    return ModelSpec(module="", seed=USER_SEED, cases=(Case("inference", name, {}),), tol=tol)


def check_model_file(path: Path) -> None:
    """What can be told without Keras: a Keras 2 file, a missing or damaged archive."""
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise UserModelError(
                f"{path} is a TensorFlow SavedModel (Keras 2 / tf.keras), which Keras 3 cannot load as a model; "
                "rebuild it in Keras 3 and save it with model.save('model.keras')"
            )
        raise UserModelError(f"{path} is a directory, not a .keras file; pass the path of a file saved by model.save()")
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise UserModelError(
            f"{path} is a Keras 2 HDF5 file; load it with keras.saving.load_model() under Keras 3 and save it "
            "again with model.save('model.keras')"
        )
    if not path.exists():
        raise UserModelError(f"model file {path} does not exist; pass the path of a .keras file")
    if path.suffix.lower() != ".keras":
        raise UserModelError(f"{path} is not a .keras file; save the model with model.save('model.keras')")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            bad = zf.testzip()
            config = zf.read("config.json") if bad is None and "config.json" in names else None
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserModelError(f"{path} is not a readable .keras archive ({exc}); save the model again") from None
    if bad is not None or config is None:
        what = f"member {bad} is damaged" if bad else "it has no config.json"
        raise UserModelError(f"{path} is a damaged .keras archive ({what}); save the model again")
    try:
        if not isinstance(json.loads(config), dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserModelError(
            f"{path} is a damaged .keras archive (its config.json is not a JSON object: {why}); save the model again"
        ) from None


def check_inputs_file(path: Path, allow_nonfinite: bool = False) -> None:
    """An .npz of arrays, no pickles, every float finite unless `allow_nonfinite`."""
    if not path.exists():
        raise UserModelError(f"inputs file {path} does not exist; save the inputs with numpy.savez(path, name=array)")
    if not zipfile.is_zipfile(path):
        raise UserModelError(f"inputs file {path} is not an .npz archive; save it with numpy.savez(path, name=array)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not z.files:
                raise ValueError("no arrays")
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserModelError(
            f"inputs file {path} is not a readable .npz of arrays ({exc}); save it with numpy.savez(path, name=array)"
        ) from None
    for name, a in arrays.items():  # a member that is no .npy comes back as bytes; strings feed no model
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biufc":
            what = f"{a.dtype} array" if isinstance(a, np.ndarray) else "not an array"
            raise UserModelError(
                f"inputs file {path}: '{name}' is {what}; save numeric arrays with numpy.savez(path, name=array)"
            )
    if not allow_nonfinite:
        _check_finite(path, arrays)


def _check_finite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """No NaN or Inf in the inputs: their outputs are NaN on every backend, which no golden can hold."""
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            raise UserModelError(
                f"inputs file {path}: '{name}' holds {nan} NaN and {inf} Inf of {a.size} values; save finite "
                "inputs, or pass --allow-nonfinite to run them as they are"
            )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def inputs_note(source: Source) -> str | None:
    """The line that says an .npz's one array feeds a one-input model under another name
    (check_feed maps it), or None: the names match, or the model takes several inputs and
    its runner says which names it wants."""
    if source.inputs is None:
        return None
    with np.load(source.inputs, allow_pickle=False) as z:
        arrays = list(z.files)
    if len(arrays) != 1 or arrays[0] == "arr_0":  # arr_0: numpy.savez(path, array), by position
        return None
    where, array = Path(source.inputs).name, arrays[0]
    names = _file_inputs(Path(source.target))[1] if source.kind == "file" else None
    if names is None:
        return f"note: {where}: its one array '{array}' feeds {source.name}'s input if it takes one, whatever its name"
    if len(names) != 1 or names[0] == array:
        return None
    return f"note: {where}: its one array '{array}' feeds {source.name}'s input '{names[0]}'"


def file_input_specs(path: Path) -> list[tuple[str, tuple, str]] | None:
    """A .keras file's inputs (name, shape with None for any size, dtype) from its config.json,
    in the order the model takes them, without Keras; None when the config does not tell."""
    config, names = _file_inputs(path)
    try:
        layers = {layer["config"]["name"]: layer for layer in config["layers"]}
        specs = [_input_spec(layers[n]) for n in names or []]
    except (KeyError, TypeError, AttributeError):
        return None
    return specs if specs and None not in specs else None


def _file_inputs(path: Path) -> tuple[dict, list[str] | None]:
    """A .keras file's config and its input names, without Keras (the names None: not told)."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))["config"]
        if "input_layers" in config:  # functional: [name, node, tensor] for one input, nested for several
            return config, _input_layer_names(config["input_layers"]) or None
        first = (config.get("layers") or [{}])[0]  # Sequential: its InputLayer first
        return config, [first["config"]["name"]] if first.get("class_name") == "InputLayer" else None
    except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile):
        return {}, None


def _input_layer_names(x) -> list[str]:
    if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
        return [x[0]]
    values = x.values() if isinstance(x, dict) else x if isinstance(x, list) else []
    return [name for v in values for name in _input_layer_names(v)]


def _input_spec(layer: dict):
    """(name, shape, dtype) of one serialized InputLayer, or None when it is not one."""
    if layer.get("class_name") != "InputLayer":
        return None
    c = layer["config"]
    shape = c.get("batch_shape") or c.get("batch_input_shape")
    dtype = c.get("dtype", "float32")
    if isinstance(dtype, dict):  # a DTypePolicy
        dtype = dtype["config"]["name"]
    if shape is None or not isinstance(dtype, str):
        return None
    return c["name"], tuple(shape), dtype


def check_feed(given: dict[str, np.ndarray], specs, where: str, model: str) -> dict[str, np.ndarray]:
    """`given` by the model's input names, or a UserModelError saying what does not match."""
    names = [n for n, _, _ in specs]
    if set(given) == {f"arr_{i}" for i in range(len(specs))}:  # numpy.savez(path, *arrays): input order
        given = {n: given[f"arr_{i}"] for i, n in enumerate(names)}
    if len(names) == len(given) == 1:  # one array for one input: its name cannot be ambiguous
        given = {names[0]: next(iter(given.values()))}
    if set(given) != set(names):
        raise UserModelError(
            f"{where} holds {sorted(given)} but {model} takes inputs {names}; save one array per input "
            "under those names"
        )
    batch = None
    for name, shape, dtype in specs:
        a = given[name]
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            raise UserModelError(
                f"{where}: '{name}' has shape {a.shape} but {model} takes {shape} (None: any size); "
                "save inputs of the model's shape"
            )
        # A float array feeds any float input: the runner casts floats to the run's floatx (the
        # same float32 inputs serve a float64 or mixed-precision run); ints must stay ints.
        floats = a.dtype.kind == "f" and dtype.startswith(("float", "bfloat", "mixed_"))
        if str(a.dtype) != dtype and not floats:
            raise UserModelError(
                f"{where}: '{name}' is {a.dtype} but {model} takes {dtype}; save it with .astype('{dtype}')"
            )
        if batch is not None and a.shape[0] != batch:
            raise UserModelError(f"{where}: '{name}' has batch {a.shape[0]}, the other inputs {batch}; use one batch")
        batch = a.shape[0]
    return given


# --- shared by regen, evaluate and localize -------------------------------------------------


def root_of(spec: ModelSpec, default: Path) -> Path:
    """The goldens' root of a model: a user model's own folder, else the suite's."""
    return Path(spec.source.golden) if spec.source else Path(default)


def describe(source: Source) -> str:
    """What the goldens record of a source: no absolute paths, which differ between clones."""
    return f"{source.kind}:{Path(source.target).name if source.kind == 'file' else source.target}"


def command_args(source: Source) -> str:
    """The options that name this model on the command line (for a fix in a message)."""
    what = f"--model-file {source.target}" if source.kind == "file" else f"--model {source.target}"
    extra = (f" --inputs {source.inputs}" if source.inputs else "") + (
        f" --custom-objects {source.custom_objects}" if source.custom_objects else ""
    )
    return what + extra + f" --golden-dir {source.golden}"


def feed_part(feeds: dict[str, np.ndarray], model: str, part: str) -> dict[str, np.ndarray]:
    """One part of a runner's feeds ('weights', 'inputs/<case>') by its own keys."""
    return golden.part(feeds, model, *part.split(golden.SEP))


def model_weights(
    model: str, record: dict, feeds: dict[str, np.ndarray], scale: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """A user model's weights by path: a .keras file's as its runner loaded them (`feeds`), a
    builder's drawn again from the seed (its runner does not write them: ConvNeXtXLarge's are
    1.4 GB), checked against the runner's checksum. `record`: the builder's record or graph;
    `scale`: its spec's weight_scale."""
    from keras_parity.run.weights import checksum, generate_weights

    fed = feed_part(feeds, model, "weights")
    if fed:
        return fed
    specs = [(p, tuple(s)) for p, s in record["weights"]]
    drawn = generate_weights(specs, USER_SEED, model, scale, generic=True, fan_in=record.get("fan_in"))
    want = record.get("weights_sha256")
    if want is not None and checksum(drawn) != want:
        raise UserModelError(f"{model}: the weights drawn again differ from its runner's; run `nox -s golden` again")
    return dict(zip((p for p, _ in specs), drawn))

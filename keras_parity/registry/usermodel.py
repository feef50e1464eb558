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


def from_file(path: Path, inputs: Path | None, custom_objects: str | None, golden: Path | None, rel_l2=None) -> Source:
    path = Path(path).absolute()
    check_model_file(path)
    if inputs is not None:
        check_inputs_file(Path(inputs))
    root = Path(golden) if golden else path.parent / "golden"
    return Source(
        path.stem, "file", str(path), str(root.absolute()), _abs(inputs), custom_objects, str(Path.cwd()), rel_l2
    )


def from_builder(target: str, inputs: Path | None, custom_objects: str | None, golden: Path, rel_l2=None) -> Source:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", target):
        raise UserModelError(f"model '{target}' is neither a built-in model nor 'package.module:function'")
    if inputs is not None:
        check_inputs_file(Path(inputs))
    name, root = target.replace(":", "."), str(Path(golden).absolute())
    return Source(name, "builder", target, root, _abs(inputs), custom_objects, str(Path.cwd()), rel_l2)


def _abs(p) -> str | None:
    return None if p is None else str(Path(p).absolute())


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
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserModelError(f"{path} is not a readable .keras archive ({exc}); save the model again") from None
    if bad is not None or "config.json" not in names:
        what = f"member {bad} is damaged" if bad else "it has no config.json"
        raise UserModelError(f"{path} is a damaged .keras archive ({what}); save the model again")


def check_inputs_file(path: Path) -> None:
    if not path.exists():
        raise UserModelError(f"inputs file {path} does not exist; save the inputs with numpy.savez(path, name=array)")
    if not zipfile.is_zipfile(path):
        raise UserModelError(f"inputs file {path} is not an .npz archive; save it with numpy.savez(path, name=array)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not z.files:
                raise ValueError("no arrays")
            for k in z.files:
                z[k]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserModelError(
            f"inputs file {path} is not a readable .npz of arrays ({exc}); save it with numpy.savez(path, name=array)"
        ) from None


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
    names = _file_input_names(Path(source.target)) if source.kind == "file" else None
    if names is None:
        return f"note: {where}: its one array '{array}' feeds {source.name}'s input if it takes one, whatever its name"
    if len(names) != 1 or names[0] == array:
        return None
    return f"note: {where}: its one array '{array}' feeds {source.name}'s input '{names[0]}'"


def _file_input_names(path: Path) -> list[str] | None:
    """A .keras file's input names from its config.json, without Keras (None: not told)."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))["config"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if "input_layers" in config:  # functional: [name, node, tensor] for one input, nested for several
        found = []

        def walk(x):
            if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
                found.append(x[0])
            elif isinstance(x, (list, dict)):
                for v in x.values() if isinstance(x, dict) else x:
                    walk(v)

        walk(config["input_layers"])
        return found or None
    first = (config.get("layers") or [{}])[0]  # Sequential: its InputLayer first
    return [first["config"]["name"]] if first.get("class_name") == "InputLayer" else None


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

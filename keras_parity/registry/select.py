"""The models one command runs: the built-in ones and the user's, chosen once from its options."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from keras_parity import paths
from keras_parity.errors import UsageError
from keras_parity.registry import usermodel
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import ModelSpec, Registry

# The commands that judge against goldens already recorded (golden makes them, bench times runs).
READS_GOLDENS = ("parity", "localize", "repro")


@dataclass(frozen=True)
class Selection:
    """The registry a command reads its specs from, the models it runs (built-in names first,
    then the user's), the goldens' root, and notes on the user's inputs to show before running."""

    registry: Registry
    models: list[str]
    golden_dir: Path
    notes: tuple[str, ...] = ()


def select_models(args) -> Selection:
    """The models the options name (--model, --model-file, --inputs, --custom-objects,
    --golden-dir, --rel-l2); raises UsageError for one that cannot run. `args` is only read."""
    asked = getattr(args, "model", None) or []
    golden_dir = getattr(args, "golden_dir", None)
    builtin = [m for m in asked if ":" not in m]
    try:
        users = _user_sources(args, [m for m in asked if ":" in m])
    except usermodel.UserModelError as exc:
        raise UsageError(str(exc)) from None
    try:
        registry = builtin_registry().with_users({u.name: usermodel.spec(u) for u in users})
    except ValueError as exc:  # a name already taken
        raise UsageError(str(exc)) from None
    known = registry.builtin
    for name in builtin:
        if name not in known:
            raise UsageError(
                f"unknown model '{name}'; choose from: {', '.join(known)} or package.module:function (your own)"
            )
    picked = list(dict.fromkeys(builtin)) if builtin else [] if users else list(known)
    if picked and not paths.CHECKOUT:  # the wheel carries the models, not their goldens
        raise UsageError(
            "the built-in models' goldens live in a checkout of keras-parity; run `nox -s parity` there, "
            "or pass your own model with --model-file or --model package.module:function"
        )
    # A user's goldens sit in their own folder (each Source holds it); the built-in ones in golden/.
    root = golden_dir if golden_dir and not users else paths.GOLDEN
    notes = tuple(filter(None, map(usermodel.inputs_note, users)))
    return Selection(registry, picked + list(dict.fromkeys(u.name for u in users)), Path(root), notes)


def _user_sources(args, builders: list[str]) -> list[usermodel.Source]:
    """The user's models: each --model-file, then each --model package.module:function."""
    inputs, custom, rel_l2 = args.inputs, args.custom_objects, args.rel_l2
    golden_dir = getattr(args, "golden_dir", None)
    _check_options(args)
    extra = {"allow_nonfinite": getattr(args, "allow_nonfinite", False)}
    users = [usermodel.from_file(f, inputs, custom, golden_dir, rel_l2, **extra) for f in args.model_file or []]
    builder_root = golden_dir or Path.cwd() / "golden"
    users += [usermodel.from_builder(t, inputs, custom, builder_root, rel_l2, **extra) for t in builders]
    if inputs and len(users) != 1:
        raise usermodel.UserModelError("--inputs belongs to one model; pass exactly one --model-file or builder")
    _check_distinct(users)
    return users


def _check_distinct(users: list[usermodel.Source]) -> None:
    """Two of the user's models under one name would share one golden set: one would be dropped."""
    seen: dict[str, usermodel.Source] = {}
    for u in users:
        if u.name in seen:
            first, second = seen[u.name].target, u.target
            raise usermodel.UserModelError(
                f"{first} and {second} are both named '{u.name}' and would share one golden set; "
                "rename one of the files (or builders) and run again"
            )
        seen[u.name] = u


def _check_options(args) -> None:
    """The options of a user's model that no model can pass with or that name nothing."""
    custom, rel_l2, golden_dir = args.custom_objects, args.rel_l2, getattr(args, "golden_dir", None)
    if custom is not None and custom.endswith(".py"):  # a file, not the module it is (mylayers.py: mylayers)
        name = Path(custom).with_suffix("").as_posix().replace("/", ".")
        raise usermodel.UserModelError(
            f"--custom-objects '{custom}' is not a module name; give the module, e.g. --custom-objects {name}"
        )
    if custom is not None and not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", custom):
        raise usermodel.UserModelError(
            f"--custom-objects '{custom}' is not a module name; give one such as mylayers or mypackage.layers"
        )
    if rel_l2 is not None and not (math.isfinite(rel_l2) and rel_l2 > 0):
        raise usermodel.UserModelError(f"--rel-l2 {rel_l2:g} can never pass; give a tolerance above 0, e.g. 1e-4")
    if golden_dir is None:
        return
    golden_dir = Path(golden_dir)
    if golden_dir.exists() and not golden_dir.is_dir():
        raise usermodel.UserModelError(f"--golden-dir {golden_dir} is a file; pass the folder that holds the goldens")
    if not golden_dir.exists() and getattr(args, "cmd", None) in READS_GOLDENS:
        raise usermodel.UserModelError(
            f"--golden-dir {golden_dir} does not exist; pass the folder `keras-parity golden` wrote the goldens to, "
            "or make them there first with `keras-parity golden --golden-dir` and the same model options"
        )


def runner_registry(user_models: list[str]) -> Registry:
    """The registry of a backend process: the built-in models and the user's its command line
    carries (each a usermodel.Source as JSON), the same the harness selected."""
    sources = [usermodel.Source.from_json(j) for j in user_models]
    try:
        return builtin_registry().with_users({s.name: usermodel.spec(s) for s in sources})
    except ValueError as exc:
        raise usermodel.UserModelError(str(exc)) from None


def finish_command(model: str, spec: ModelSpec, root: Path, regen: str = "`nox -s golden`") -> str:
    """The command that makes a model's goldens anew, with the options that name them; `regen`:
    another way they are made (the pytest fixture's), used as it is."""
    if regen != "`nox -s golden`":
        return regen
    if spec.source:
        return f"`nox -s golden -- {usermodel.command_args(spec.source)}`"
    where = "" if Path(root).resolve() == paths.GOLDEN.resolve() else f" --golden-dir {root}"
    return f"`nox -s golden -- --model {model}{where}`"

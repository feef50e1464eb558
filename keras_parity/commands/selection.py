"""The backends and models a command runs, from its arguments; a user's models are registered."""

from __future__ import annotations

from pathlib import Path

from keras_parity import golden
from keras_parity.errors import UsageError
from keras_parity.models.registry import REGISTRY
from keras_parity.registry import usermodel
from keras_parity.run.envinfo import CHECKOUT


def pick(kind: str, asked: list[str] | None, known) -> list[str]:
    """The names asked for (all known ones when none is), each checked against `known`."""
    for name in asked or []:
        if name not in known:
            also = " or package.module:function (your own)" if kind == "model" else ""
            raise UsageError(f"unknown {kind} '{name}'; choose from: {', '.join(known)}{also}")
    return list(dict.fromkeys(asked)) if asked else list(known)


def models(args, console) -> list[str]:
    """The models a command runs: built-in names, then the user's models, each registered."""
    asked = args.model or []
    builtin = [m for m in asked if ":" not in m]
    users = [
        usermodel.from_file(f, args.inputs, args.custom_objects, args.golden_dir, args.rel_l2)
        for f in args.model_file or []
    ]
    users += [
        usermodel.from_builder(
            t, args.inputs, args.custom_objects, args.golden_dir or Path.cwd() / "golden", args.rel_l2
        )
        for t in asked
        if ":" in t
    ]
    if args.inputs and len(users) != 1:
        raise usermodel.UserModelError("--inputs belongs to one model; pass exactly one --model-file or builder")
    names = [usermodel.register(u, REGISTRY) for u in users]
    for note in filter(None, map(usermodel.inputs_note, users)):
        console.print(note, soft_wrap=True, markup=False)
    known = REGISTRY.builtin
    args.golden_dir = args.golden_dir if args.golden_dir and not users else golden.GOLDEN
    picked = pick("model", builtin, known) if builtin or not users else []
    if picked and not CHECKOUT:  # the wheel carries the models, not their goldens
        raise UsageError(
            "the built-in models' goldens live in a checkout of keras-parity; run `nox -s parity` there, "
            "or pass your own model with --model-file or --model package.module:function"
        )
    return picked + names

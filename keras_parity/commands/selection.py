"""The backends and models a command runs, from its arguments (the models: registry/select.py)."""

from __future__ import annotations

from keras_parity.errors import UsageError
from keras_parity.registry.select import Selection, select_models
from keras_parity.run.settings import USERS


def pick(kind: str, asked: list[str] | None, known) -> list[str]:
    """The names asked for (all known ones when none is), each checked against `known`."""
    for name in asked or []:
        if name not in known:
            also = " or package.module:function (your own)" if kind == "model" else ""
            raise UsageError(f"unknown {kind} '{name}'; choose from: {', '.join(known)}{also}")
    return list(dict.fromkeys(asked)) if asked else list(known)


def models(args, console) -> Selection:
    """The models a command runs, built-in names first, chosen once; the notes on the user's
    inputs shown before anything runs."""
    USERS.seconds()  # KERAS_PARITY_TIME_LIMIT checked before any backend starts (a UsageError)
    selection = select_models(args)
    for note in selection.notes:
        console.print(note, soft_wrap=True, markup=False)
    return selection

"""The one input list of pins (requirements/pins.toml) and the locks compiled from it."""

from __future__ import annotations

import tomllib

from keras_parity.errors import UsageError
from keras_parity.paths import LOCKS

PINS = LOCKS / "pins.toml"


class PinsError(UsageError):
    pass


def lock_inputs(path=PINS) -> dict[str, list[str]]:
    """Lock name -> the requirement lines it is compiled from, in [locks] order."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PinsError(f"{path}: cannot read the pins ({e}); fix the file or restore it with git") from e
    groups, locks = data.get("pins", {}), data.get("locks", {})
    if not locks:
        raise PinsError(f"{path}: no [locks] table; add one naming each lock's [pins] groups")
    out = {}
    for name, members in locks.items():
        missing = [g for g in members if g not in groups]
        if missing:
            raise PinsError(f"{path}: lock {name!r} names unknown group(s) {', '.join(missing)}; add them under [pins]")
        out[name] = [req for g in members for req in groups[g]]
    return out


def pinned_version(group: str, path=PINS) -> str:
    """The version of a [pins] group's first requirement, e.g. '2.21.0' for tensorflow-cpu."""
    req = tomllib.loads(path.read_text())["pins"][group][0]
    return req.split(";", 1)[0].split("==", 1)[1].strip()

"""How a backend process runs, beside what it computes (flags.py): its time limit and the x86
kernel cap. They travel in the plan to the launcher, which hands the cap to each child's environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from keras_parity.errors import UsageError
from keras_parity.run.envinfo import ISA_CAP_ENV

# A backend process that runs longer than this is stopped and its backend reported as an
# ERROR naming the model it was on: generous, many times the zoo's slowest backend process
# (docs/measurements.md, "Constants and the numbers behind them");
# `--time-limit SECONDS` or this variable set it.
TIME_LIMIT_ENV = "KERAS_PARITY_TIME_LIMIT"
DEFAULT_TIME_LIMIT = 3600.0


@dataclass(frozen=True)
class Settings:
    """`--time-limit` and `--isa-cap`; None keeps what the user's environment says, if anything."""

    time_limit: float | None = None  # seconds a backend process may run
    isa_cap: str | None = None  # the widest instruction set the kernels may use (machine.ISA_CAPS)

    def seconds(self) -> float:
        """The time limit: the option's, else KERAS_PARITY_TIME_LIMIT's, else an hour; a UsageError
        for a variable that is not a duration (commands check it before any backend starts)."""
        if self.time_limit is not None:
            return self.time_limit
        text = os.environ.get(TIME_LIMIT_ENV, "").strip()
        if not text:
            return DEFAULT_TIME_LIMIT
        try:
            return duration(text)
        except ValueError as exc:
            raise UsageError(f"{TIME_LIMIT_ENV}={text}: {exc}") from None

    def cap(self) -> str | None:
        """The ISA cap: the option's, else KERAS_PARITY_ISA_CAP's, else none."""
        return self.isa_cap or os.environ.get(ISA_CAP_ENV) or None

    def child_env(self) -> dict[str, str]:
        """What a backend process's environment gets from these settings (the runner applies the cap)."""
        cap = self.cap()
        return {ISA_CAP_ENV: cap} if cap else {}


def duration(text: str) -> float:
    """Seconds from `text`, finite and above 0, or ValueError saying so: nan would turn the limit
    off, and 0 or less would stop every backend process at once."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds; give seconds above 0, e.g. 1800") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text} is not a duration; give seconds above 0, e.g. 1800")
    return value


USERS = Settings()  # no options given: what the user's environment says, else the defaults

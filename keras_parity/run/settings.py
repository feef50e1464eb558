"""How a backend process runs, beside what it computes (flags.py): its time limit and the x86
kernel cap. They travel in the plan to the launcher, which hands the cap to each child's environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
        """The time limit: the option's, else KERAS_PARITY_TIME_LIMIT's, else an hour."""
        if self.time_limit is not None:
            return self.time_limit
        return float(os.environ.get(TIME_LIMIT_ENV) or DEFAULT_TIME_LIMIT)

    def cap(self) -> str | None:
        """The ISA cap: the option's, else KERAS_PARITY_ISA_CAP's, else none."""
        return self.isa_cap or os.environ.get(ISA_CAP_ENV) or None

    def child_env(self) -> dict[str, str]:
        """What a backend process's environment gets from these settings (the runner applies the cap)."""
        cap = self.cap()
        return {ISA_CAP_ENV: cap} if cap else {}


USERS = Settings()  # no options given: what the user's environment says, else the defaults

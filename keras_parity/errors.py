"""Errors that carry their exit code, as click's do: a command raises one, `main()` catches it
once, prints its one line and exits with its code (keras_parity/exitcodes.py).

Every kind of bad input or broken machine subclasses UsageError (exit 2) or InfraError (exit 3);
anything else that escapes a command is a bug and exits 3 too, never 1 (1 means a regression).
"""

from __future__ import annotations

from keras_parity.exitcodes import Exit


class ParityError(Exception):
    """An error a command reports in one line; `exit_code` is what the process exits with."""

    exit_code: Exit = Exit.INFRA

    def line(self) -> str:
        text = str(self).strip().splitlines()[0] if str(self).strip() else type(self).__name__
        return text if text.startswith("error: ") else f"error: {text}"


class UsageError(ParityError):
    """A bad argument, an unknown model or backend, an input file that cannot be used."""

    exit_code = Exit.USAGE


class InfraError(ParityError):
    """The machine: an environment, an image, a backend process, a tool that is missing."""

    exit_code = Exit.INFRA

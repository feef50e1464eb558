"""The exit codes of every `keras-parity` command, so CI can tell a regression from a broken
machine, as pytest separates failed tests from usage and internal errors.

When a run has both failed and errored cells it exits REGRESSION: the regression is what a
person must act on, and retrying the job (what an infrastructure error calls for) would not
make it go away. The ERROR cells are still listed in the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Exit(IntEnum):
    OK = 0  # everything passed
    REGRESSION = 1  # a cell failed: the numbers, a moved default, a changed definition
    USAGE = 2  # a bad argument, an unknown model or backend, unusable input files
    INFRA = 3  # the machine: an environment, an image, a backend process that crashed


def from_verdicts(verdicts: Iterable[str]) -> Exit:
    """The code of a run from its cells' verdicts (pass, fail, error, unsupported, skipped, and
    usage: an error cell of the user's own files or inputs, which retrying would not mend)."""
    seen = set(verdicts)
    if "fail" in seen:
        return Exit.REGRESSION
    if "error" in seen:
        return Exit.INFRA
    return Exit.USAGE if "usage" in seen else Exit.OK

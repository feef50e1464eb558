"""A backend process ends with the command that started it.

The launcher starts each backend in a process group of its own (so a Ctrl-C on the terminal is
the launcher's to handle) and stops the group on any way out it sees. A launcher killed with
SIGKILL sees nothing: without this watch its backends would run on, re-parented, still writing
into the results folder. The launcher passes its process id; the backend checks every
half-second that it is still its parent and otherwise kills its own group.
"""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT = "KERAS_PARITY_PARENT_PID"
EVERY = 0.5  # seconds between checks


def watch() -> None:
    """Start the watch if a launcher named itself (a runner started by hand has no parent to follow)."""
    expected = os.environ.pop(PARENT, None)  # popped: the backend's own children are not watched by it
    if not expected or not expected.isdigit():
        return
    if os.getppid() != int(expected):  # the launcher is already gone
        _end()
    threading.Thread(target=_follow, args=(int(expected),), name="parent-watch", daemon=True).start()


def _follow(expected: int) -> None:
    while True:
        if os.getppid() != expected:
            _end()
        time.sleep(EVERY)


def _end() -> None:
    """Kill the backend with anything it started: its group when it leads one (as launched)."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)

"""Progress of long work: the backend processes, environment syncs, wheel downloads, image
builds, drift cells.

One rich display per command (`live`): every piece of work in it is a bar with what it is,
how far it is (models, packages, bytes or build steps, of how many when known), the time
elapsed and rich's estimate of the rest. Without a terminal (CI logs, pipes) nothing is
redrawn: each piece of work says one line when it starts and one when it ends, with the
same numbers, through the caller's `log`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.errors import LiveError
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

# The display of the command running now, if any: work started under it joins it as a bar
# (rich allows one live display per console).
_LIVE: Progress | None = None


class Amount(ProgressColumn):
    """'3/12 models', '1.2/3.4 GB' or '37 packages': a task's own unit (its `unit` field)."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit", "")
        if unit == "bytes":
            done = decimal(int(task.completed))
            return Text(f"{done}/{decimal(int(task.total))}" if task.total else done)
        done = f"{int(task.completed)}/{int(task.total)}" if task.total else f"{int(task.completed)}"
        return Text(f"{done} {unit}".strip())


def _display(console: Console) -> Progress:
    # The description gives way (ellipsis) on a narrow terminal; the numbers never wrap.
    return Progress(
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
        BarColumn(bar_width=20), Amount(table_column=Column(no_wrap=True)), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=True, expand=True,
    )  # fmt: skip


@contextlib.contextmanager
def live(console: Console) -> Iterator[Progress | None]:
    """The command's display on `console` for the block (None without a terminal, or when one
    is already up: work joins that one)."""
    global _LIVE
    if _LIVE is not None or not getattr(console, "is_terminal", False):
        yield _LIVE
        return
    bars = _display(console)
    with bars:
        _LIVE = bars
        try:
            yield bars
        finally:
            _LIVE = None


class Activity:
    """One piece of work: `update(completed, total=..., note=...)` as it goes."""

    def __init__(self, what: str, total: float | None, unit: str):
        self.what, self.total, self.unit = what, total, unit
        self.completed, self.note, self.task, self.bars = 0.0, "", None, None
        self.t0 = time.monotonic()

    def _description(self) -> str:
        return f"{self.what}: {self.note}" if self.note else self.what

    def update(self, completed: float | None = None, total: float | None = None, note: str | None = None) -> None:
        self.completed = self.completed if completed is None else completed
        self.total = self.total if total is None else total
        self.note = self.note if note is None else note
        if self.bars is not None:
            self.bars.update(self.task, completed=self.completed, total=self.total, description=self._description())

    def amount(self) -> str:
        """'37 of 37 packages', '1.2 GB'."""
        if self.unit == "bytes":
            return decimal(int(self.completed))
        of = f" of {int(self.total)}" if self.total else ""
        return f"{int(self.completed)}{of} {self.unit}".strip()

    def seconds(self) -> float:
        return time.monotonic() - self.t0


@contextlib.contextmanager
def activity(what: str, total: float | None = None, unit: str = "", log: Callable[[str], None] = print):
    """A bar on the command's display (or a display of its own on a terminal), else two lines."""
    act = Activity(what, total, unit)
    own = None
    bars = _LIVE
    if bars is None and sys.stderr.isatty():
        own = _display(Console(stderr=True))
        try:
            own.start()
            bars = own
        except LiveError:  # another live display (a spinner) holds the terminal
            own = None
    if bars is not None:
        act.bars = bars
        act.task = bars.add_task(what, total=total, unit=unit)
    else:
        log(f"{what} ...")
    ok = False
    try:
        yield act
        ok = True
    finally:
        if act.bars is not None:
            act.bars.remove_task(act.task)
        if own is not None:
            own.stop()
        if act.bars is None or not ok:
            note = f" ({act.note})" if act.note else ""
            log(f"{what}: {act.amount()}{note} in {act.seconds():.0f} s{'' if ok else ', stopped'}")


def watch(
    cmd: list[str],
    what: str,
    measure: Callable[[], float],
    *,
    total: float | None = None,
    unit: str = "",
    note: Callable[[], str] | None = None,
    env: dict | None = None,
    log: Callable[[str], None] = print,
) -> subprocess.CompletedProcess:
    """Run `cmd` (its output captured, as subprocess.run would) while `measure()` says how far it
    is, from outside: packages in the environment, bytes on disk."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, activity(what, total, unit, log) as act:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        try:
            while proc.poll() is None:
                act.update(measure(), note=note() if note else None)
                time.sleep(0.5)
        except BaseException:  # interrupted: the command must not outlive the harness
            proc.kill()
            proc.wait()
            raise
        act.update(measure(), note=note() if note else None)
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@contextlib.contextmanager
def status(console: Console, text: str):
    """A spinner-like bar saying what runs, on the command's display (work under it joins it)."""
    with live(console), activity(text, log=lambda line: None):
        yield


class BackendProgress:
    """The backend processes of one run, a bar each; pass `update` as run_backends' `on_poll`."""

    def __init__(self, console: Console, backends: list[str], models: list[str]):
        self.models, self.backends = list(models), list(backends)
        self.tasks: dict[str, int] = {}
        self._live = live(console)
        self.bars: Progress | None = None

    def __enter__(self) -> BackendProgress:
        self.bars = self._live.__enter__()
        if self.bars is not None:
            total = len(self.models)
            self.tasks = {b: self.bars.add_task(f"{b}: starting", total=total, unit="models") for b in self.backends}
        return self

    def __exit__(self, *exc) -> None:
        if self.bars is not None:
            for task in self.tasks.values():
                self.bars.remove_task(task)
        self._live.__exit__(*exc)

    def update(self, running: dict[str, str | None]) -> None:
        """`running`: backend -> the model it is on (None: still importing); a backend no
        longer in it has finished."""
        if self.bars is None:  # no display: no bars to move
            return
        for backend, task in self.tasks.items():
            if backend not in running:
                self.bars.update(task, completed=len(self.models), description=f"{backend}: done")
                continue
            model = running[backend]
            done = self.models.index(model) if model in self.models else 0
            self.bars.update(task, completed=done, description=f"{backend}: {model or 'starting'}")

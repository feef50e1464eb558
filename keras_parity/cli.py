"""Command line: `python -m keras_parity COMMAND` (the nox sessions call it); the commands are the
modules of keras_parity/commands/. Errors are caught here once: a ParityError exits with its code,
anything else is a bug and exits 3 with its traceback in a log file, never 1 (a regression); Ctrl-C
exits 130 and SIGTERM 143, the backend processes stopped on the way out (run/launch.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from rich.console import Console

from keras_parity.commands.catalog import parser
from keras_parity.errors import ParityError, UsageError
from keras_parity.exitcodes import Exit
from keras_parity.paths import CHECKOUT, RESULTS

ERROR_LOG = "keras-parity-error.log"
LOCK = ".lock"  # in --out, held by the command writing there
INTERRUPTED, TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as a shell reports them


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` runs (the backend processes stopped)."""


class OutFolderBusy(UsageError):
    pass


def main(argv=None) -> int:
    """Parse, run the command and return its exit code; argparse's own errors exit 2 themselves."""
    args = parser().parse_args(argv)
    # Wide when piped (CI logs), so table rows and one-line errors stay on one line.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    try:
        with _terminate_raises(), hold(getattr(args, "out", None)):
            _require_checkout(args)
            return int(args.command.run(args, console))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED
    except ParityError as exc:
        print(exc.line(), file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:  # a bug: one line here, the whole traceback in the log
        log = _write_traceback(getattr(args, "out", None) or RESULTS)
        what = (str(exc).strip().splitlines() or [""])[0]
        where = f"the traceback is in {log}" if log else "no folder could hold its traceback"
        print(f"error: internal error: {type(exc).__name__}: {what}; {where}", file=sys.stderr)
        return int(Exit.INFRA)


@contextlib.contextmanager
def _terminate_raises():
    """SIGTERM as an exception (Terminated) while the command runs, the previous handler after."""

    def terminate(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def hold(out: Path | None):
    """`out` for this command alone while it runs: a lock on its .lock file (holding this
    process's id), so two runs never read or delete each other's files; None: nothing to hold.
    The lock file, and the folders made for it if they stay empty, are removed at the end."""
    if out is None:
        yield
        return
    out = Path(out)
    made = [p for p in (out, *out.parents) if not p.exists()]  # removed again if left empty
    try:
        _require_writable_out(out)
        lock = _take(out / LOCK, out)
    except OSError as exc:
        _remove_empty(made)
        raise UsageError(f"--out {out} cannot hold its lock file ({exc.strerror}); choose another --out") from None
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield
    finally:
        (out / LOCK).unlink(missing_ok=True)  # still held: a command waiting on it finds it gone
        lock.close()
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _take(path: Path, out: Path):
    """The lock file at `path`, opened and locked by this process; another holder is refused."""
    while True:
        lock = open(path, "a+")  # noqa: SIM115 (held until the command ends)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            lock.close()
            raise OutFolderBusy(
                f"another keras-parity command (pid {pid}) is writing to {out}; wait for it to finish "
                f"or give this one a folder of its own with --out"
            ) from None
        if path.exists() and os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
            break
        lock.close()  # the holder before removed it as it ended: lock the file there now
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _require_checkout(args) -> None:
    """The wheel carries the harness and the models, not the built-in goldens, the drift history
    or the docker/ folder the images build from."""
    docker = getattr(args, "docker", False)
    if not CHECKOUT and (getattr(args.command, "NEEDS_CHECKOUT", False) or docker):
        what = "--docker" if docker else f"`keras-parity {args.cmd}`"
        raise UsageError(f"{what} runs from a checkout of keras-parity (clone it and use its nox sessions)")


def _require_writable_out(out: Path | None) -> None:
    """--out is a folder this user can write, and the report's files in it are not folders: checked
    before any backend starts, so a whole run is never lost to its last write."""
    if out is None:
        return
    from keras_parity.pipeline import TABLE

    out, fix = Path(out), "pass --out a folder you can write"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; {fix}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out} cannot be written ({exc.strerror or exc}); {fix}") from None
    for name in ("parity.json", "parity.xml", TABLE):
        if (out / name).exists() and not (out / name).is_file():
            raise UsageError(f"{out / name} is not a file; move it out of the way, or pass another --out")


def _write_traceback(folder: Path) -> Path | None:
    """The current exception's traceback in `folder`/keras-parity-error.log, else in the working
    directory, else in the temporary folder; None when none of them can be written."""
    for place in (Path(folder), Path.cwd(), Path(tempfile.gettempdir())):
        path = place / ERROR_LOG
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(traceback.format_exc())
            return path
        except OSError:
            continue
    return None


if __name__ == "__main__":
    sys.exit(main())

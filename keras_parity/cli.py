"""Command line: `python -m keras_parity COMMAND` (the nox sessions call it); the commands are the
modules of keras_parity/commands/. Errors are caught here once: a ParityError exits with its code,
anything else is a bug and exits 3 with its traceback in a log file, never 1 (a regression)."""

from __future__ import annotations

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


def main(argv=None) -> int:
    """Parse, run the command and return its exit code; argparse's own errors exit 2 themselves."""
    args = parser().parse_args(argv)
    # Wide when piped (CI logs), so table rows and one-line errors stay on one line.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    try:
        _require_checkout(args)
        _require_writable_out(getattr(args, "out", None))
        return int(args.command.run(args, console))
    except ParityError as exc:
        print(exc.line(), file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:  # a bug: one line here, the whole traceback in the log
        log = _write_traceback(getattr(args, "out", None) or RESULTS)
        what = (str(exc).strip().splitlines() or [""])[0]
        where = f"the traceback is in {log}" if log else "no folder could hold its traceback"
        print(f"error: internal error: {type(exc).__name__}: {what}; {where}", file=sys.stderr)
        return int(Exit.INFRA)


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

"""`keras-parity parity`: every model on every backend against the goldens, diagnosed and reported."""

from __future__ import annotations

import argparse

from keras_parity.commands.arguments import VERBOSE, common, run_arguments, run_settings, user_path
from keras_parity.commands.selection import models as chosen_models
from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.registry.spec import BACKENDS

HELP = "run every model on every backend and compare with the goldens"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("parity", help=HELP, description=HELP)
    common(p)
    run_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    p.add_argument(
        "--no-training",
        dest="training",
        action="store_false",
        help="forward cases only: no gradients or optimizer steps",
    )
    p.add_argument("--float64", action="store_true", help="classify every cell rounding or semantic")
    p.add_argument(
        "--with",
        dest="with_",
        action="append",
        metavar="NAME==VERSION",
        help="rehearse an upgrade: also run with these versions (repeatable), beside the pinned run",
    )
    p.add_argument(
        "--policy",
        action="append",
        choices=("mixed_float16", "mixed_bfloat16", "float64"),
        help="also run every cell under this dtype policy (repeatable)",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="GPU: also run with TF32 on and report its effect per cell (skipped without a GPU)",
    )
    p.add_argument(
        "--lstm-no-cudnn",
        action="store_true",
        help="GPU: also run the LSTM off cuDNN, on the generic kernel (skipped without a GPU)",
    )
    p.add_argument(
        "--determinism", action="store_true", help="run every cell twice in-process and once more in a fresh one"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail a case whose outputs carry no information (constant, saturated), not only note it",
    )
    p.add_argument(
        "--strict-bits",
        action="store_true",
        help="fail a cell whose bits moved against this platform's own snapshot (pinned CI, not upgrades)",
    )
    p.add_argument(
        "--patch",
        type=user_path,
        metavar="FILE.py",
        help="a Python file each backend process runs after importing Keras: a proposed fix or a planted "
        "fault, tried against the goldens in memory (no installed file is edited)",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.pipeline import Plan, execute
    from keras_parity.watch import judge as watched

    settings = run_settings(args)
    _check_patch(args)
    backends, selection = pick("backend", args.backend, BACKENDS), chosen_models(args, console)
    if args.with_:
        from keras_parity import rehearse

        return Exit(rehearse.main(args, backends, selection, console, settings))
    runs, cells = execute(Plan.from_args(args, backends, selection, settings), console)
    expected = watched.load()  # without it (an installed package) nothing is compared, nothing fails
    moved = [r for r in watched.judge(runs, expected) if r.failed] if expected is not None else []
    return from_verdicts([*(c.verdict for c in cells), *("fail" for _ in moved)])


def _check_patch(args) -> None:
    """--patch: an existing .py file, on the local backends (a container cannot see it)."""
    from keras_parity.errors import UsageError

    if args.patch is None:
        return
    if args.patch.suffix != ".py" or not args.patch.is_file():
        raise UsageError(f"--patch {args.patch}: not a Python file; give the path of a .py file")
    if args.docker or args.with_:
        raise UsageError("--patch runs in the local environments only; leave out --docker and --with")

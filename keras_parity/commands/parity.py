"""`keras-parity parity`: every model on every backend against the goldens, diagnosed and reported."""

from __future__ import annotations

import argparse
import os
import platform
import time

from keras_parity import report
from keras_parity.commands.arguments import VERBOSE, common, run_arguments
from keras_parity.commands.selection import models as chosen_models
from keras_parity.commands.selection import pick
from keras_parity.errors import UsageError
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.registry.spec import BACKENDS
from keras_parity.report import progress
from keras_parity.run.envinfo import ISA_CAP_ENV
from keras_parity.run.launch import TIME_LIMIT_ENV

HELP = "run every model on every backend and compare with the goldens"
TABLE = "parity-table.txt"  # the full per-cell table, beside parity.json


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
    return p


def apply_run_limits(args) -> None:
    """--time-limit and --isa-cap, handed to the launcher and the runners through the environment."""
    if getattr(args, "time_limit", None) is not None:
        if args.time_limit <= 0:
            raise UsageError(f"--time-limit {args.time_limit:g} is not a duration; give seconds above 0, e.g. 1800")
        os.environ[TIME_LIMIT_ENV] = str(args.time_limit)  # the launcher reads it (keras_parity/run/launch.py)
    if getattr(args, "isa_cap", None):
        if platform.machine().lower() not in ("x86_64", "amd64"):
            raise UsageError(f"--isa-cap {args.isa_cap} caps x86 kernels; this machine is {platform.machine()}")
        os.environ[ISA_CAP_ENV] = args.isa_cap  # the runners (local or in containers) apply it


def run(args, console) -> Exit:
    from keras_parity.pipeline import Plan, diagnose, run_and_judge
    from keras_parity.run.record import summary

    apply_run_limits(args)
    backends, selection = pick("backend", args.backend, BACKENDS), chosen_models(args, console)
    models = selection.models
    if args.with_:
        from keras_parity import rehearse

        return Exit(rehearse.main(args, backends, selection, console))
    plan = Plan.from_args(args, backends, selection)
    t0 = time.perf_counter()
    with progress.BackendProgress(console, backends, models) as bars:
        runs, cells = run_and_judge(plan, log=console.print, on_poll=bars.update)
    cells = diagnose(plan, cells, runs, status=lambda text: progress.status(console, text))
    wall = time.perf_counter() - t0
    show_report(cells, args, console)
    meta = {b: summary(r) for b, r in runs.items()}  # graphs and weight lists stay in raw/
    report.write_json(cells, meta, args.out / "parity.json", seeds={m: selection.registry[m].seed for m in models})
    report.write_junit(cells, args.out / "parity.xml")
    console.print(
        f"wall time {wall:.1f} s; full table in {args.out / TABLE} (or -v); report in {args.out / 'parity.json'} "
        f"and {args.out / 'parity.xml'}",
        soft_wrap=True,
    )
    return from_verdicts(c.status for c in cells)


def show_report(cells, args, console) -> None:
    """The grid and the failures on the terminal (the full table too with -v), the full table in
    results/, and on GitHub Actions the summary in the job's page."""
    report.print_report(cells, console, verbose=args.verbose)
    report.write_table(cells, args.out / TABLE)
    report.write_step_summary(cells)

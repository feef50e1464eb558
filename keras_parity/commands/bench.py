"""`keras-parity bench`: the parity run timed against a naive sequential, eager baseline."""

from __future__ import annotations

import argparse

from keras_parity.commands.arguments import common, count, run_arguments, run_settings
from keras_parity.commands.selection import models as chosen_models
from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit

HELP = "time the parity run against a naive sequential, eager baseline"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help=HELP, description=HELP)
    common(p)
    run_arguments(p)
    p.add_argument(
        "--runs",
        type=count("a number of runs", "1 or more, e.g. --runs 3"),
        default=3,
        metavar="N",
        help="warm parity runs to time (default 3: median, min, max)",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.bench import bench, bench_user
    from keras_parity.registry.spec import BACKENDS

    args.backend = pick("backend", args.backend, BACKENDS)  # an unknown one: exit 2 before anything runs
    settings = run_settings(args)
    selection = chosen_models(args, console)
    if args.model_file or any(":" in m for m in args.model or []):
        return Exit(bench_user(args, selection, console, settings))
    return Exit(bench(args, selection, console, settings))

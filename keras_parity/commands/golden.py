"""`keras-parity golden`: regenerate the float64 references and this platform's snapshots."""

from __future__ import annotations

import argparse

from keras_parity.commands.arguments import common, run_arguments, run_settings
from keras_parity.commands.selection import models as chosen_models
from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit
from keras_parity.registry.spec import BACKENDS
from keras_parity.report import progress
from keras_parity.run.flags import RunFlags

HELP = "regenerate the float64 references and the backend snapshots"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("golden", help=HELP, description=HELP)
    common(p)
    run_arguments(p)
    p.add_argument(
        "--snapshots-only",
        action="store_true",
        help="record this platform's snapshots only; the float64 references and graphs stay as they are",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.golden.regen import regenerate
    from keras_parity.run import service

    settings = run_settings(args)
    backends, selection = pick("backend", args.backend, BACKENDS), chosen_models(args, console)
    models, registry = selection.models, selection.registry
    plan = service.RunPlan(
        backends=backends, models=models, registry=registry, flags=RunFlags(device=args.device, configs=True),
        settings=settings, docker=args.docker, golden_dir=selection.golden_dir,
    )  # fmt: skip
    with progress.status(console, f"running {', '.join(models)} on {', '.join(backends)}"):
        runs = service.run(plan, into=args.out / "raw", twins=args.twins, log=console.print)
    console.print("regenerating goldens (unchanged files are not touched):")
    problems = regenerate(
        runs, models, registry, selection.golden_dir, log=console.print, snapshots_only=args.snapshots_only
    )
    # A backend whose process did not run is the machine's; anything else left unwritten (a model
    # failing on a backend, snapshots refused) is for a person to look at.
    if any(r.error for r in runs.values()):
        return Exit.INFRA
    if any(r.usage_errors for r in runs.values()):  # the user's files or inputs, said in the log above
        return Exit.USAGE
    return Exit.REGRESSION if problems else Exit.OK

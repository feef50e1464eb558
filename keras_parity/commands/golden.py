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
    noise_runs = _under_a_cap(plan, args, console)
    console.print("regenerating goldens (unchanged files are not touched):")
    problems = regenerate(
        runs, models, registry, selection.golden_dir, log=console.print, snapshots_only=args.snapshots_only,
        noise_runs=noise_runs,
    )  # fmt: skip
    # A backend whose process did not run is the machine's; anything else left unwritten (a model
    # failing on a backend, snapshots refused) is for a person to look at.
    if any(r.error for r in runs.values()):
        return Exit.INFRA
    if any(r.usage_errors for r in runs.values()):  # the user's files or inputs, said in the log above
        return Exit.USAGE
    return Exit.REGRESSION if problems else Exit.OK


NOISE_CAP = "avx2"  # a user model's noise is measured under this ISA cap too: another CPU's kernels


def _under_a_cap(plan, args, console) -> dict:
    """Your own models run again under an ISA cap, for the float32 noise their tolerances are
    measured from (registry/usernoise.py); none for snapshots only, a GPU, a CPU other than x86,
    containers, or your own --rel-l2 or --isa-cap."""
    from dataclasses import replace

    from keras_parity.run import machine, service

    users = [m for m in plan.models if plan.registry[m].source and plan.registry[m].source.rel_l2 is None]
    capped_here = machine.is_x86() and not (plan.docker or plan.settings.isa_cap)  # else: the backends' noise alone
    if not users or args.snapshots_only or args.device != "cpu" or not capped_here:
        return {}
    capped = replace(plan, models=users, settings=replace(plan.settings, isa_cap=NOISE_CAP))
    with progress.status(console, f"measuring the noise of {', '.join(users)} under ISA cap {NOISE_CAP}"):
        return service.run(capped, into=args.out / "raw-capped", log=console.print)

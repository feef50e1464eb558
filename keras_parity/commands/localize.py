"""`keras-parity localize`: every layer's error against float64, and the first layer where it jumps."""

from __future__ import annotations

import argparse
import time

from keras_parity.commands.arguments import model_arguments, user_path
from keras_parity.commands.selection import models as chosen_models
from keras_parity.commands.selection import pick
from keras_parity.errors import UsageError
from keras_parity.exitcodes import Exit
from keras_parity.paths import RESULTS
from keras_parity.registry.spec import BACKENDS
from keras_parity.report import progress
from keras_parity.run.flags import RunFlags

HELP = "every layer's error against float64, and the first layer where it jumps"
NEEDS_CHECKOUT = True  # the layer-by-layer references are the checkout's goldens


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("localize", help=HELP)
    model_arguments(p)
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.add_argument("--case", action="append", help="only this case (repeatable)")
    p.add_argument("--out", type=user_path, default=user_path(str(RESULTS / "localize")), help="where tables' plots go")
    p.add_argument("--docker", action="store_true", help="run each backend in its image")
    return p


def run(args, console) -> Exit:
    from keras_parity.run import service

    backends, selection = pick("backend", args.backend, BACKENDS), chosen_models(args, console)
    models = selection.models
    if len(models) != 1:
        raise UsageError("localize profiles one model; pass one --model or one --model-file")
    model = models[0]
    spec = selection.registry[model]
    cases = [c for c in spec.cases if c.mode != "moving_stats" and (not args.case or c.name in args.case)]
    if not cases:
        raise UsageError(f"no case {args.case} in {model}; choose from {', '.join(c.name for c in spec.cases)}")
    t0 = time.perf_counter()
    with progress.status(console, f"capturing every layer of {model} on {', '.join(backends)}"):
        plan = service.RunPlan(
            backends=backends, models=[model], registry=selection.registry, flags=RunFlags(layers=True),
            docker=args.docker,
        )  # fmt: skip
        runs = service.run(plan, into=args.out / "raw", log=console.print)
    failed = 0
    for b, run in runs.items():
        if run.error or model not in run.models:
            console.print(f"[red]error[/] {b}: {run.failure(model)}", soft_wrap=True)
            failed += 1
            continue
        for case in cases:
            _show_case(model, spec, case.name, b, run, selection.golden_dir, args, console)
    console.print(f"localized in {time.perf_counter() - t0:.1f} s")
    return Exit.INFRA if failed else Exit.OK


def _show_case(model: str, spec, case: str, backend: str, run, golden_dir, args, console) -> None:
    """One case's layer-by-layer table on the terminal, and its plot beside the results."""
    from rich.table import Table

    from keras_parity.diagnose.localize import case_layers, describe, first_jump, plot, profile

    rows = profile(spec, model, case, case_layers(run, model, case), golden_dir, run.feeds)
    hit = first_jump(rows)
    t = Table(title=f"{model}/{case} on {backend}: error vs float64, layer by layer")
    for col in ("layer", "type", "rel L2", "inputs' rel L2", "R", ""):
        t.add_column(col, justify="left" if col in ("layer", "type", "") else "right")
    for r in rows:
        mark = "[red]<- first jump[/]" if r is hit else r.note
        t.add_row(r.name, r.class_name, f"{r.rel_l2:.2e}", f"{r.inputs_rel_l2:.2e}", f"{r.rate:.3g}", mark)
    console.print(t)
    png = plot(rows, hit, f"{model}/{case} on {backend}", args.out / f"{model}-{case}-{backend}.png")
    console.print(f"{describe(rows)}; plot: {png}", soft_wrap=True)

"""`keras-parity sensitivity`: per layer, the least change the verdict catches, confirmed by planted runs."""

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
from keras_parity.run.flags import RunFlags

HELP = "per layer, the least change of its output or weights the verdict catches, confirmed by planted runs"
NEEDS_CHECKOUT = True  # judged against the checkout's goldens


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sensitivity", help=HELP)
    model_arguments(p)
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.add_argument("--case", action="append", help="only this forward case (repeatable)")
    p.add_argument(
        "--out", type=user_path, default=user_path(str(RESULTS)), help="where sensitivity.json and the plots go"
    )
    return p


def run(args, console) -> Exit:
    from keras_parity import sensitivity
    from keras_parity.run import service
    from keras_parity.sensitivity import show

    backends, selection = pick("backend", args.backend, BACKENDS), chosen_models(args, console)
    targets = [
        sensitivity.Target(m, c)
        for m in selection.models
        for c in sensitivity.forward_cases(selection.registry[m])
        if not args.case or c in args.case
    ]
    if not targets:
        raise UsageError(f"no forward case {args.case} in {', '.join(selection.models)}; leave out --case for all")
    models = list(dict.fromkeys(t.model for t in targets))
    plan = service.RunPlan(
        backends=backends, models=models, registry=selection.registry, flags=RunFlags(),
        golden_dir=selection.golden_dir,
    )  # fmt: skip
    t0 = time.perf_counter()
    rows = sensitivity.measure(plan, targets, args.out / "sensitivity", log=console.print)
    show.table(rows, backends, console)
    json_path = show.write_json(rows, args.out / "sensitivity.json")
    plots = show.plot(rows, args.out / "sensitivity")
    console.print(f"written: {json_path}, {len(plots)} plot(s) in {args.out / 'sensitivity'}", soft_wrap=True)
    console.print(f"measured in {time.perf_counter() - t0:.0f} s")
    return Exit.OK

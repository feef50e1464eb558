"""Command line: `python -m keras_parity {parity,golden,bench}`; the nox sessions call these."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console

from keras_parity import golden, options, report
from keras_parity.drift import cli as drift_cli
from keras_parity.exitcodes import Exit, from_verdicts, usage_error
from keras_parity.models.registry import REGISTRY
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS
from keras_parity.report import progress
from keras_parity.run.envinfo import CHECKOUT, ISA_CAP_ENV
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import TIME_LIMIT_ENV

TABLE = "parity-table.txt"  # the full per-cell table, beside parity.json

# Wide when piped (CI logs), so table rows and one-line errors stay on one line.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _pick(kind: str, asked: list[str] | None, known) -> list[str]:
    for name in asked or []:
        if name not in known:
            also = " or package.module:function (your own)" if kind == "model" else ""
            usage_error(f"unknown {kind} '{name}'; choose from: {', '.join(known)}{also}")
    return list(dict.fromkeys(asked)) if asked else list(known)


def _models(args) -> list[str]:
    """The models a command runs: built-in names, then the user's models, each registered."""
    asked = args.model or []
    builtin = [m for m in asked if ":" not in m]
    try:
        users = [
            usermodel.from_file(f, args.inputs, args.custom_objects, args.golden_dir, args.rel_l2)
            for f in args.model_file or []
        ]
        users += [
            usermodel.from_builder(
                t, args.inputs, args.custom_objects, args.golden_dir or Path.cwd() / "golden", args.rel_l2
            )
            for t in asked
            if ":" in t
        ]
        if args.inputs and len(users) != 1:
            raise usermodel.UserModelError("--inputs belongs to one model; pass exactly one --model-file or builder")
        names = [usermodel.register(u, REGISTRY) for u in users]
    except usermodel.UserModelError as exc:
        usage_error(str(exc))
    for note in filter(None, map(usermodel.inputs_note, users)):
        console.print(note, soft_wrap=True, markup=False)
    known = REGISTRY.builtin
    args.golden_dir = args.golden_dir if args.golden_dir and not users else golden.GOLDEN
    picked = _pick("model", builtin, known) if builtin or not users else []
    if picked and not CHECKOUT:  # the wheel carries the models, not their goldens
        usage_error(
            "the built-in models' goldens live in a checkout of keras-parity; run `nox -s parity` there, "
            "or pass your own model with --model-file or --model package.module:function"
        )
    return picked + names


def cmd_parity(args) -> int:
    from keras_parity.pipeline import Plan, diagnose, run_and_judge
    from keras_parity.run.record import summary

    backends, models = _pick("backend", args.backend, BACKENDS), _models(args)  # (sets args.golden_dir)
    if args.with_:
        from keras_parity import rehearse

        return rehearse.main(args, backends, models, console)
    plan = Plan.from_args(args, backends, models)
    t0 = time.perf_counter()
    with progress.BackendProgress(console, backends, models) as bars:
        runs, cells = run_and_judge(plan, log=console.print, on_poll=bars.update)
    cells = diagnose(plan, cells, runs, status=lambda text: progress.status(console, text))
    wall = time.perf_counter() - t0
    _report(cells, args, console)
    meta = {b: summary(r) for b, r in runs.items()}  # graphs and weight lists stay in raw/
    report.write_json(cells, meta, args.out / "parity.json", seeds={m: REGISTRY[m].seed for m in models})
    report.write_junit(cells, args.out / "parity.xml")
    console.print(
        f"wall time {wall:.1f} s; full table in {args.out / TABLE} (or -v); report in {args.out / 'parity.json'} "
        f"and {args.out / 'parity.xml'}",
        soft_wrap=True,
    )
    return from_verdicts(c.status for c in cells)


def _report(cells, args, console) -> None:
    """The grid and the failures on the terminal (the full table too with -v), the full table in
    results/, and on GitHub Actions the summary in the job's page."""
    report.print_report(cells, console, verbose=args.verbose)
    report.write_table(cells, args.out / TABLE)
    report.write_step_summary(cells)


def cmd_golden(args) -> int:
    from keras_parity.golden.regen import regenerate
    from keras_parity.run.launch import run_backends

    backends, models = _pick("backend", args.backend, BACKENDS), _models(args)
    with progress.status(console, f"running {', '.join(models)} on {', '.join(backends)}"):
        runs = run_backends(
            backends,
            models,
            args.out / "raw",
            RunFlags(device=args.device, configs=True),
            docker=args.docker,
            twins=args.twins,
            log=console.print,
        )
    console.print("regenerating goldens (unchanged files are not touched):")
    problems = regenerate(runs, models, args.golden_dir, log=console.print, snapshots_only=args.snapshots_only)
    # A backend whose process did not run is the machine's; anything else left unwritten (a model
    # failing on a backend, snapshots refused) is for a person to look at.
    if any(r.error for r in runs.values()):
        return Exit.INFRA
    return Exit.REGRESSION if problems else Exit.OK


def cmd_images(args) -> int:
    from rich.table import Table

    from keras_parity.run.envs import EnvError
    from keras_parity.run.images import build, prune, upstream_size_mb

    backends = _pick("backend", args.backend, BACKENDS)
    if args.prune:
        try:
            console.print(f"pruned: {prune(backends, log=console.print):.0f} MB of images freed")
        except EnvError as exc:
            console.print(f"[red]error[/]: {exc}", soft_wrap=True)
            return Exit.INFRA
        return Exit.OK
    devices = ["cpu", "cuda"] if args.cuda else ["cpu"]
    t = Table(title="keras-parity images")
    for col in ("image", "build seconds", "size (MB)", f"vs {args.compare}"):
        t.add_column(col, justify="left" if col == "image" else "right")
    failed = 0
    for b in backends:
        for d in devices:
            try:
                r = build(b, d, base_image=args.base_image, log=console.print)
            except EnvError as exc:
                console.print(f"[red]error[/]: {exc}", soft_wrap=True)
                failed += 1
                continue
            upstream = upstream_size_mb(args.compare)
            ratio = f"{r['size_mb'] / upstream:.2f}x" if upstream else "-"
            t.add_row(r["tag"], f"{r['seconds']:.1f}", f"{r['size_mb']:.0f}", ratio)
    console.print(t)
    if failed < len(backends) * len(devices) and upstream_size_mb(args.compare) is None:
        console.print(
            f"{args.compare} is not in this engine, so sizes are not compared with it; "
            f"`docker pull {args.compare}` where a registry is reachable, then rerun",
            soft_wrap=True,
        )
    return Exit.INFRA if failed else Exit.OK


def cmd_localize(args) -> int:
    from rich.table import Table

    from keras_parity.diagnose.localize import case_layers, describe, first_jump, plot, profile
    from keras_parity.run.launch import run_backends

    backends, models = _pick("backend", args.backend, BACKENDS), _models(args)
    if len(models) != 1:
        usage_error("localize profiles one model; pass one --model or one --model-file")
    model = models[0]
    spec = REGISTRY[model]
    cases = [c for c in spec.cases if c.mode != "moving_stats" and (not args.case or c.name in args.case)]
    if not cases:
        usage_error(f"no case {args.case} in {model}; choose from {', '.join(c.name for c in spec.cases)}")
    t0 = time.perf_counter()
    with progress.status(console, f"capturing every layer of {model} on {', '.join(backends)}"):
        runs = run_backends(
            backends, [model], args.out / "raw", RunFlags(layers=True), docker=args.docker, log=console.print
        )
    failed = 0
    for b, run in runs.items():
        if run.error or model not in run.models:
            console.print(f"[red]error[/] {b}: {run.failure(model)}", soft_wrap=True)
            failed += 1
            continue
        for case in cases:
            rows = profile(model, case.name, case_layers(run, model, case.name), args.golden_dir, run.feeds)
            hit = first_jump(rows)
            t = Table(title=f"{model}/{case.name} on {b}: error vs float64, layer by layer")
            for col in ("layer", "type", "rel L2", "inputs' rel L2", "R", ""):
                t.add_column(col, justify="left" if col in ("layer", "type", "") else "right")
            for r in rows:
                mark = "[red]<- first jump[/]" if r is hit else r.note
                t.add_row(r.name, r.class_name, f"{r.rel_l2:.2e}", f"{r.inputs_rel_l2:.2e}", f"{r.rate:.3g}", mark)
            console.print(t)
            png = plot(rows, hit, f"{model}/{case.name} on {b}", args.out / f"{model}-{case.name}-{b}.png")
            console.print(f"{describe(rows)}; plot: {png}", soft_wrap=True)
    console.print(f"localized in {time.perf_counter() - t0:.1f} s")
    return Exit.INFRA if failed else Exit.OK


def cmd_report(args) -> int:
    from keras_parity.report.merge import MergeError, merge

    try:
        cells, runs = merge(args.dirs)
    except MergeError as exc:
        usage_error(str(exc))
    _report(cells, args, console)
    report.write_json(cells, runs, args.out / "parity.json")
    report.write_junit(cells, args.out / "parity.xml")
    console.print(
        f"merged {len(args.dirs)} result directories into {args.out / 'parity.json'}, parity.xml and {TABLE}",
        soft_wrap=True,
    )
    return from_verdicts(c.status for c in cells)


def cmd_bench(args) -> int:
    from keras_parity.bench import bench, bench_user

    if args.model_file or any(":" in m for m in args.model or []):
        return bench_user(args, _models(args), console)
    return bench(args, console)


def cmd_repro(args) -> int:
    from keras_parity import repro

    args.models = _models(args)  # registers a user model given with --model-file or --model
    return repro.run(args, console)


def cmd_zoo(args, console) -> int:
    from keras_parity.zoo import run

    return run.main(args, console)


def main(argv=None) -> int:
    commands = {
        "parity": cmd_parity, "golden": cmd_golden, "bench": cmd_bench,
        "images": cmd_images, "localize": cmd_localize, "report": cmd_report, "zoo": cmd_zoo,
        "repro": cmd_repro,
    }  # fmt: skip
    ap = options.parser(commands)
    args = ap.parse_args(argv)
    # The wheel carries the harness and the models, not the built-in goldens, the drift
    # history or the docker/ folder the images build from.
    if not CHECKOUT and (args.cmd in ("localize", "drift", "images") or getattr(args, "docker", False)):
        what = "--docker" if getattr(args, "docker", False) else f"`keras-parity {args.cmd}`"
        usage_error(f"{what} runs from a checkout of keras-parity (clone it and use its nox sessions)")
    if getattr(args, "time_limit", None) is not None:
        if args.time_limit <= 0:
            usage_error(f"--time-limit {args.time_limit:g} is not a duration; give seconds above 0, e.g. 1800")
        os.environ[TIME_LIMIT_ENV] = str(args.time_limit)  # the launcher reads it (keras_parity/run/launch.py)
    if getattr(args, "isa_cap", None):
        if platform.machine().lower() not in ("x86_64", "amd64"):
            usage_error(f"--isa-cap {args.isa_cap} caps x86 kernels; this machine is {platform.machine()}")
        os.environ[ISA_CAP_ENV] = args.isa_cap  # the runners (local or in containers) apply it
    code = args.fn(args, console) if args.fn in (drift_cli.cmd_drift, cmd_zoo) else args.fn(args)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

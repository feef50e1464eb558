"""`parity` as one pipeline: plan → run → judge → diagnose → report.

The plan is built once from the options. The run and judge steps produce the cells: the main
run, then each dtype policy's and each GPU variant's. Diagnoses come after, each one a step
that says when it is wanted and what more it runs; adding one means adding it to DIAGNOSES.
Every run goes through the run service (run/service.py), which a test replaces with recorded runs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from keras_parity import golden
from keras_parity.diagnose import Diagnosed, apply
from keras_parity.judge.compare import CellResult
from keras_parity.registry.select import Selection
from keras_parity.run import service
from keras_parity.run.flags import RunFlags
from keras_parity.run.record import BackendRun
from keras_parity.run.service import RunPlan
from keras_parity.run.settings import Settings

TABLE = "parity-table.txt"  # the full per-cell table, beside parity.json


@dataclass(frozen=True, kw_only=True)
class Plan(RunPlan):
    """What one `parity` invocation runs and asks, from its options."""

    out: Path
    golden_dir: Path
    twins: list[str] | None = None
    policies: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # GPU variants: 'tf32', 'lstm-no-cudnn'
    float64: bool = False  # classify every cell, not only the failing ones
    strict: bool = False  # a case whose outputs carry no information fails
    strict_bits: bool = False  # a bit moved against this platform's own snapshot fails
    verbose: bool = False  # the full per-cell table on the terminal too

    @property
    def determinism(self) -> bool:
        """The same-process repeat (flags.twice), then a fresh process: --determinism."""
        return self.flags.twice

    @classmethod
    def from_args(cls, args, backends: list[str], selection: Selection, settings: Settings) -> Plan:
        variants = tuple(v for v, on in (("tf32", args.tf32), ("lstm-no-cudnn", args.lstm_no_cudnn)) if on)
        return cls(
            backends=backends, models=selection.models, registry=selection.registry, out=args.out,
            golden_dir=selection.golden_dir, settings=settings, docker=args.docker, twins=args.twins,
            flags=RunFlags(device=args.device, training=args.training, twice=args.determinism, watch=True,
                           patch=str(args.patch or "")),
            policies=tuple(args.policy or ()), variants=variants, float64=args.float64, strict=args.strict,
            strict_bits=args.strict_bits, verbose=args.verbose,
        )  # fmt: skip


def parity(plan: Plan, console) -> list[CellResult]:
    """The whole pipeline, its progress on `console`: the diagnosed cells, reported."""
    return execute(plan, console)[1]


def execute(
    plan: Plan, console, phases: dict[str, float] | None = None
) -> tuple[dict[str, BackendRun], list[CellResult]]:
    """parity's pipeline: (the main run, the diagnosed cells), reported. `phases` receives each
    step's seconds: run, judge, diagnose, report (`nox -s bench` prints them)."""
    from keras_parity.report import progress

    phases = {} if phases is None else phases
    t0 = time.perf_counter()
    with progress.BackendProgress(console, plan.backends, plan.models) as bars:
        runs, cells = run_and_judge(plan, log=console.print, on_poll=bars.update, phases=phases)
    t1 = time.perf_counter()
    cells = diagnose(plan, cells, runs, status=lambda text: progress.status(console, text))
    t2 = time.perf_counter()
    report(plan, runs, cells, console, wall=t2 - t0)
    phases.update(diagnose=t2 - t1, report=time.perf_counter() - t2)
    return runs, cells


def run_and_judge(
    plan: Plan, log=print, on_poll=None, phases: dict[str, float] | None = None
) -> tuple[dict[str, BackendRun], list[CellResult]]:
    """The main run and its cells, then each policy's and each GPU variant's cells.
    `on_poll(running)` sees the main run's progress (report/progress.py); `phases` gets the
    seconds of the run and of the judging (policies' and variants' reruns count as judging)."""
    from keras_parity.diagnose.gpu import variant_cells
    from keras_parity.judge.evaluate import evaluate, obtained_outputs

    t0 = time.perf_counter()
    runs = service.run(plan, into=plan.out / "raw", twins=plan.twins, log=log, on_poll=on_poll)
    t1 = time.perf_counter()
    cells = evaluate(
        runs, plan.models, plan.registry, plan.golden_dir, training=plan.flags.training,
        strict=plan.strict, strict_bits=plan.strict_bits,
    )  # fmt: skip
    golden.write_obtained(obtained_outputs(runs, cells, plan.registry, plan.golden_dir))  # the main run's failures
    for policy in plan.policies:  # the same models under another dtype policy
        asked = RunFlags(device=plan.flags.device, dtype=policy, patch=plan.flags.patch)
        judging = {"policy": policy, "strict": plan.strict}
        cells += service.rerun(plan, into=plan.out / policy, flags=asked, judging=judging, log=log)[1]
    for variant in plan.variants:
        base = list(cells)  # the cells so far: a later variant is set beside the earlier ones too
        cells += variant_cells(plan, variant, base, runs, log=log)
    if phases is not None:
        phases.update(run=t1 - t0, judge=time.perf_counter() - t1)
    return runs, cells


@dataclass(frozen=True)
class Diagnosis:
    """One question asked of the judged cells, with the runs it needs."""

    status: str  # what the console says while it runs

    def wanted(self, plan: Plan, cells: list[CellResult]) -> bool:
        raise NotImplementedError

    def run(self, plan: Plan, cells: list[CellResult], runs: dict[str, BackendRun]) -> list[Diagnosed]:
        """What it finds, without changing the cells (the pipeline applies it)."""
        raise NotImplementedError


class Determinism(Diagnosis):
    """Bits across a repeat in the same process and a fresh one (--determinism)."""

    def wanted(self, plan, cells):
        return plan.determinism

    def run(self, plan, cells, runs):
        from keras_parity.diagnose.determinism import judge

        return judge(cells, runs, service.run(plan, into=plan.out / "again", twice=False))


class Localization(Diagnosis):
    """The first divergent layer of every failing cell."""

    def wanted(self, plan, cells):
        return any(c.values_failed for c in cells)

    def run(self, plan, cells, runs):
        from keras_parity.diagnose.localize import localize_failures

        return localize_failures(plan, cells, plan.out / "layers")


class Rounding(Diagnosis):
    """Rounding or semantic, from a float64 run: the failing cells, or every cell with --float64."""

    def wanted(self, plan, cells):
        return plan.float64 or any(c.values_failed for c in cells)

    def run(self, plan, cells, runs):
        from keras_parity.diagnose.rounding import classify

        return classify(plan, cells, plan.out / "float64", everything=plan.float64)


# In this order: each sees the cells with the findings of those before it applied, and
# localization and rounding read the verdicts determinism may have changed.
DIAGNOSES: tuple[Diagnosis, ...] = (
    Determinism("running every cell again in a fresh process"),
    Localization("localizing the failing cells layer by layer"),
    Rounding("running in float64: rounding or semantic"),
)


def diagnose(plan: Plan, cells: list[CellResult], runs: dict[str, BackendRun], status=None) -> list[CellResult]:
    """The cells with every wanted diagnosis's findings, each diagnosis asking the cells the
    ones before it built. `status(text)` is a context manager showing what runs (the console's spinner)."""
    for diagnosis in DIAGNOSES:
        if diagnosis.wanted(plan, cells):
            with status(diagnosis.status) if status else contextlib.nullcontext():
                cells = apply(cells, diagnosis.run(plan, cells, runs))
    return cells


def report(plan: Plan, runs: dict[str, BackendRun], cells: list[CellResult], console, wall: float) -> None:
    """The report step: the cells shown (show_report), parity.json and parity.xml in the plan's folder."""
    from keras_parity import report as reports
    from keras_parity.run.record import summary
    from keras_parity.watch import judge as watched

    show_report(cells, plan.out, console, verbose=plan.verbose)
    expected = watched.load()
    said = watched.line(watched.judge(runs, expected), expected)
    if said:
        console.print(said, soft_wrap=True)
    meta = {b: summary(r) for b, r in runs.items()}  # graphs and weight lists stay in raw/
    seeds = {m: plan.registry[m].seed for m in plan.models}
    reports.write_json(cells, meta, plan.out / "parity.json", seeds=seeds)
    reports.write_junit(cells, plan.out / "parity.xml")
    console.print(
        f"wall time {wall:.1f} s; full table in {plan.out / TABLE} (or -v); report in {plan.out / 'parity.json'} "
        f"and {plan.out / 'parity.xml'}",
        soft_wrap=True,
    )


def show_report(cells: list[CellResult], out: Path, console, verbose: bool = False) -> None:
    """The grid and the failures on the terminal (the full table too when verbose), the full table
    in `out`, and on GitHub Actions the summary in the job's page."""
    from keras_parity import report as reports

    reports.print_report(cells, console, verbose=verbose)
    reports.write_table(cells, out / TABLE)
    reports.write_step_summary(cells)

"""`parity` as one pipeline: plan → run → judge → diagnose → report.

The plan is built once from the options. The run and judge steps produce the cells: the main
run, then each dtype policy's and each GPU variant's. Diagnoses come after, each one a step
that says when it is wanted and what more it runs; adding one means adding it to DIAGNOSES.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

from keras_parity.diagnose import Diagnosed, apply
from keras_parity.judge.compare import CellResult
from keras_parity.registry.select import Selection
from keras_parity.registry.spec import Registry
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import BackendRun


@dataclass(frozen=True)
class Plan:
    """What one `parity` invocation runs and asks, from its options."""

    backends: list[str]
    models: list[str]
    registry: Registry  # the models' specs (keras_parity/registry/select.py)
    out: Path
    golden_dir: Path
    flags: RunFlags = RunFlags()  # what the main run's backend processes compute
    docker: bool = False
    twins: list[str] | None = None
    policies: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # GPU variants: 'tf32', 'lstm-no-cudnn'
    float64: bool = False  # classify every cell, not only the failing ones
    strict: bool = False  # a case whose outputs carry no information fails
    strict_bits: bool = False  # a bit moved against this platform's own snapshot fails

    @property
    def determinism(self) -> bool:
        """The same-process repeat (flags.twice), then a fresh process: --determinism."""
        return self.flags.twice

    @classmethod
    def from_args(cls, args, backends: list[str], selection: Selection) -> Plan:
        variants = tuple(v for v, on in (("tf32", args.tf32), ("lstm-no-cudnn", args.lstm_no_cudnn)) if on)
        asked = RunFlags(device=args.device, training=args.training, twice=args.determinism)
        return cls(
            backends, selection.models, selection.registry, args.out, selection.golden_dir, asked, args.docker,
            args.twins, tuple(args.policy or ()), variants, args.float64, args.strict, args.strict_bits,
        )  # fmt: skip


def run_and_judge(plan: Plan, log=print, on_poll=None) -> tuple[dict[str, BackendRun], list[CellResult]]:
    """The main run and its cells, then each policy's and each GPU variant's cells.
    `on_poll(running)` sees the main run's progress (report/progress.py)."""
    from keras_parity.diagnose.gpu import variant_cells
    from keras_parity.judge.evaluate import evaluate
    from keras_parity.run.launch import run_backends

    runs = run_backends(
        plan.backends, plan.models, plan.out / "raw", plan.flags, registry=plan.registry, docker=plan.docker,
        twins=plan.twins,
        golden_dir=plan.golden_dir, log=log, on_poll=on_poll,
    )  # fmt: skip
    cells = evaluate(
        runs, plan.models, plan.registry, plan.golden_dir, training=plan.flags.training,
        strict=plan.strict, strict_bits=plan.strict_bits,
    )  # fmt: skip
    for policy in plan.policies:  # the same models under another dtype policy
        asked = RunFlags(device=plan.flags.device, dtype=policy)
        other = run_backends(
            plan.backends, plan.models, plan.out / policy, asked, registry=plan.registry, docker=plan.docker
        )
        cells += evaluate(
            other, plan.models, plan.registry, plan.golden_dir, write_obtained=False, policy=policy,
            strict=plan.strict,
        )  # fmt: skip
    for variant in plan.variants:
        base = list(cells)  # the cells so far: a later variant is set beside the earlier ones too
        cells += variant_cells(
            variant, base, runs, plan.backends, plan.models, plan.out, registry=plan.registry,
            golden_dir=plan.golden_dir, docker=plan.docker,
        )  # fmt: skip
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
        from keras_parity.run.launch import run_backends

        asked = replace(plan.flags, twice=False)
        fresh = run_backends(
            plan.backends, plan.models, plan.out / "again", asked, registry=plan.registry, docker=plan.docker
        )
        return judge(cells, runs, fresh)


class Localization(Diagnosis):
    """The first divergent layer of every failing cell."""

    def wanted(self, plan, cells):
        return any(c.values_failed for c in cells)

    def run(self, plan, cells, runs):
        from keras_parity.diagnose.localize import localize_failures

        return localize_failures(
            cells, plan.out / "layers", plan.flags, plan.registry, docker=plan.docker, root=plan.golden_dir
        )


class Rounding(Diagnosis):
    """Rounding or semantic, from a float64 run: the failing cells, or every cell with --float64."""

    def wanted(self, plan, cells):
        return plan.float64 or any(c.values_failed for c in cells)

    def run(self, plan, cells, runs):
        from keras_parity.diagnose.rounding import classify

        return classify(
            cells, plan.out / "float64", plan.flags, plan.registry, everything=plan.float64, docker=plan.docker,
            root=plan.golden_dir,
        )  # fmt: skip


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

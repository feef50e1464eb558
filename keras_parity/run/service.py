"""Every run of the backend processes goes through here: a plan says which backends and models,
with what flags and settings; `run` starts them, `rerun` runs a subset again and judges it.

A caller changes the flags by name (`run(plan, into=out, layers=True)`), never builds a launch
by hand; tests give the plan a `launcher` that returns recorded runs instead of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keras_parity.registry.spec import Registry
from keras_parity.run.flags import RunFlags
from keras_parity.run.record import BackendRun
from keras_parity.run.settings import USERS, Settings

Launcher = Callable[..., dict[str, BackendRun]]  # launch.run_backends' signature


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """What to run: backends and models, their specs, what each process computes and how it runs."""

    backends: list[str]
    models: list[str]
    registry: Registry  # the models' specs (keras_parity/registry/select.py)
    flags: RunFlags = RunFlags()
    settings: Settings = USERS  # the time limit and the ISA cap
    docker: bool = False
    golden_dir: Path | None = None  # the goldens judged against (and the native twins read)
    launcher: Launcher | None = field(default=None, compare=False)  # None: launch.run_backends


@dataclass(frozen=True)
class Subset:
    """The backends and models a re-run covers."""

    backends: list[str]
    models: list[str]

    @classmethod
    def of(cls, cells: Iterable[Any]) -> Subset:
        """The backends and models of `cells` (the ones a diagnosis asks about), sorted."""
        cells = list(cells)
        return cls(sorted({c.backend for c in cells}), sorted({c.model for c in cells}))


def run(
    plan: RunPlan,
    *,
    into: Path,
    backends: list[str] | None = None,
    models: list[str] | None = None,
    flags: RunFlags | None = None,
    twins: list[str] | None = None,
    python: dict[str, Path] | None = None,
    docker: bool | None = None,
    log=print,
    on_poll=None,
    **flag_changes,
) -> dict[str, BackendRun]:
    """The plan's backends and models (or those given) run into `into`, under the plan's flags
    (or `flags`) with `flag_changes` replaced; `python` and `twins` as launch.run_backends takes them."""
    from keras_parity.run import launch

    launcher = plan.launcher or launch.run_backends
    return launcher(
        list(plan.backends if backends is None else backends),
        list(plan.models if models is None else models),
        into,
        replace(flags or plan.flags, **flag_changes),
        registry=plan.registry,
        docker=plan.docker if docker is None else docker,
        python=python,
        twins=twins,
        golden_dir=plan.golden_dir,
        settings=plan.settings,
        log=log,
        on_poll=on_poll,
    )


def rerun(
    plan: RunPlan,
    subset: Subset | None = None,
    *,
    into: Path,
    judging: dict[str, Any] | None = None,
    flags: RunFlags | None = None,
    python: dict[str, Path] | None = None,
    log=print,
    **flag_changes,
) -> tuple[dict[str, BackendRun], list]:
    """The subset (None: the whole plan) run again with the flags changed, and its cells judged
    against the plan's goldens; `judging` says how (judge.evaluate's policy, precision, strict, ...);
    `python`: each backend's interpreter, where not its environment's (an upgrade's rehearsal)."""
    chosen = subset or Subset(list(plan.backends), list(plan.models))
    runs = run(
        plan, into=into, backends=chosen.backends, models=chosen.models, flags=flags, python=python, log=log,
        **flag_changes,
    )  # fmt: skip
    return runs, judge(plan, runs, chosen.models, **(judging or {}))


def judge(plan: RunPlan, runs: dict[str, BackendRun], models: list[str] | None = None, **judging: Any) -> list:
    """The cells of `runs` (of the plan's models, or those given) against the plan's goldens."""
    from keras_parity import golden
    from keras_parity.judge.evaluate import evaluate

    chosen = list(plan.models if models is None else models)
    return evaluate(runs, chosen, plan.registry, plan.golden_dir or golden.GOLDEN, **judging)

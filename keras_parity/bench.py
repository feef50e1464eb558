"""`nox -s bench`: the parity pipeline's time and memory next to a naive baseline, same machine, same run.

The parity side is the whole pipeline (the backend processes side by side, judging, diagnoses,
report), run several times warm (--runs): median, min and max. Naive baseline: the same models
and cases, backend after backend, every cell through the eager call, no JAX compilation cache,
no judging. Both sides include process start and imports.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keras_parity.errors import UsageError
from keras_parity.exitcodes import Exit
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import envs, service
from keras_parity.run.service import RunPlan
from keras_parity.run.settings import USERS, Settings

PHASES = ("import", "build", "set_weights", "first_call", "steady_call", "training", "layers")
STEPS = ("run", "judge", "diagnose", "report")  # the pipeline's, harness side (pipeline.execute)
# The targets the figures are held to (warm, two cores): docs/measurements.md, "Timings".
TARGET_WALL, TARGET_RATIO, TARGET_RSS_MB = 20.0, 0.30, 2048


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f}, {len(values)} runs)"


def _pipelines(plan: RunPlan, golden_dir: Path, out: Path, runs: int) -> tuple[list[float], list[dict], dict]:
    """`runs` whole parity pipelines (run, judge, diagnose, report), warm: their wall times,
    their steps' seconds and the last one's backend runs."""
    from keras_parity.pipeline import Plan, execute

    quiet = Console(file=io.StringIO(), width=200)  # the report each pipeline prints is not the bench's
    walls, steps, last = [], [], {}
    same = {f.name: getattr(plan, f.name) for f in fields(RunPlan) if f.name != "golden_dir"}
    for i in range(runs):
        full = Plan(**same, out=out / f"parity-{i}", golden_dir=golden_dir)
        phases: dict[str, float] = {}
        (last, _), wall = _timed(lambda full=full, phases=phases: execute(full, quiet, phases))
        walls.append(wall)
        steps.append(phases)
    return walls, steps, last


def bench(args, selection, console, settings: Settings = USERS) -> int:
    """The built-in models' parity pipeline, several times, against the naive baseline; `selection`: select_models'."""
    backends = args.backend or list(BACKENDS)
    plan = RunPlan(backends=backends, models=selection.models, registry=selection.registry, settings=settings)
    out, log = Path(tempfile.mkdtemp(prefix="keras-parity-bench-")), console.print
    # Warm-up: environments exist and the compilation cache is filled, as for a user's rerun.
    service.run(plan, into=out / "warm", log=log)
    walls, steps, runs = _pipelines(plan, selection.golden_dir, out, args.runs)
    # The same run without the training path, right after: what gradients and steps add.
    _, forward_wall = _timed(lambda: service.run(plan, into=out / "forward", training=False, log=log))
    steady = service.run(plan, into=out / "steady", repeat=True, log=log)
    naive_wall, naive = 0.0, {}
    for b in backends:
        r, t = _timed(lambda b=b: service.run(plan, into=out / "naive", backends=[b], naive=True, log=log))
        naive[b], naive_wall = r[b], naive_wall + t
    failed = [b for b, r in {**runs, **naive}.items() if r.error]
    for b in failed:
        console.print(f"[red]{b}: {(runs[b].error or naive[b].error)}[/]")
    console.print(_process_table(backends, runs, naive, steady))
    console.print(_steps_table(walls, steps))
    if args.docker:
        _container_overhead(plan, out, runs, console)
    wall, rss = statistics.median(walls), max(r.peak_rss_mb or 0 for r in runs.values())
    ratio, run_wall = wall / naive_wall if naive_wall else float("nan"), statistics.median(s["run"] for s in steps)
    added = run_wall - forward_wall
    console.print(
        f"parity, end to end (run, judge, diagnose, report): {_spread(walls)}; target <= {TARGET_WALL:.0f} s: "
        f"{'met' if wall <= TARGET_WALL else 'not met'}\n"
        f"forward cases only (--no-training): {forward_wall:.1f} s; the training path adds {added:.1f} s\n"
        f"naive baseline wall time: {naive_wall:.1f} s (backend after backend, eager, no caches)\n"
        f"ratio: {ratio:.2f} (parity's median over the naive run; target <= {TARGET_RATIO:.2f}: "
        f"{'met' if ratio <= TARGET_RATIO else 'not met'})\n"
        f"peak RSS of a backend process: {rss:.0f} MB (target <= {TARGET_RSS_MB}: "
        f"{'met' if rss <= TARGET_RSS_MB else 'not met'})"
    )
    console.print("steady_call comes from a separate run that calls each compiled case twice.")
    if args.twins is not None:  # the same run with the native twins beside the backends, right after
        _, twins_wall = _timed(lambda: service.run(plan, into=out / "twins", twins=args.twins, log=log))
        console.print(
            f"with the native twins (--twins): {twins_wall:.1f} s against {run_wall:.1f} s, "
            f"+{(twins_wall / run_wall - 1) * 100:.0f}% (target <= 30%)"
        )
    return Exit.INFRA if failed else Exit.OK  # a backend that did not run


def _process_table(backends, runs, naive, steady) -> Table:
    """Each backend process's phases (the last parity run, and the naive one), wall and peak RSS."""
    t = Table(title="per backend process (seconds; peak RSS in MB)")
    for col in ("backend", "run", *PHASES, "process wall", "peak RSS"):
        t.add_column(col.replace("layers", "layer sketches"), justify="left" if col in ("backend", "run") else "right")
    for b in backends:
        for label, r in (("parity", runs[b]), ("naive", naive[b])):
            tm = {**r.timings, "steady_call": 0.0 if label == "naive" else steady[b].timings.get("steady_call", 0)}
            cells = (f"{tm.get(p, 0):.2f}" for p in PHASES)
            t.add_row(b, label, *cells, f"{r.wall:.2f}", f"{r.peak_rss_mb or 0:.0f}")
    return t


def _steps_table(walls: list[float], steps: list[dict]) -> Table:
    """The pipeline's steps, each parity run (seconds): the backends' run, then the harness's."""
    t = Table(title="parity pipeline, each run (seconds): the backend processes, then judging, diagnoses, report")
    for col in ("run #", *STEPS, "end to end"):
        t.add_column(col, justify="right")
    for i, (wall, phases) in enumerate(zip(walls, steps), 1):
        t.add_row(str(i), *(f"{phases.get(s, 0):.2f}" for s in STEPS), f"{wall:.2f}")
    return t


def _container_overhead(plan: RunPlan, out, local, console) -> None:
    """Each backend's container against its local process, same work, same run."""
    backends = plan.backends
    service.run(plan, into=out / "docker-warm", docker=True, log=console.print)  # fills the cache volume
    boxed, wall = _timed(lambda: service.run(plan, into=out / "docker", docker=True, log=console.print))
    t = Table(title="container overhead (seconds of wall time, same models, warm caches)")
    for col in ("backend", "local", "container", "overhead", "in-process total (local / container)"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for b in backends:
        if boxed[b].error:
            console.print(f"[red]{b} in docker: {boxed[b].error}[/]")
            continue
        lt, ct = local[b].timings, boxed[b].timings
        t.add_row(
            b,
            f"{local[b].wall:.2f}",
            f"{boxed[b].wall:.2f}",
            f"{boxed[b].wall - local[b].wall:+.2f}",
            f"{lt.get('total', 0):.2f} / {ct.get('total', 0):.2f}",
        )
    console.print(t)
    console.print(f"parity run in containers: {wall:.1f} s")


# What a user's own script does with a saved model: import, load, the same calls as the
# suite's cells (predict; the eager call where it is another program), nothing else.
PLAIN = """
import json, sys, time
t0 = time.perf_counter()
import keras, numpy as np
t1 = time.perf_counter()
model = keras.saving.load_model(sys.argv[1], compile=False)
t2 = time.perf_counter()
with np.load(sys.argv[2]) as z:
    x = {k: z[k] for k in z.files}
x = x if len(x) > 1 else next(iter(x.values()))
model.predict_on_batch(x)
if keras.backend.backend() != "torch":
    model(x, training=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "compute": t3 - t2}), flush=True)
if sys.argv[3] == "skip-teardown":  # as the suite's runner does: results are out, exit at once
    import os

    os._exit(0)
"""


def _plain(backend: str, source, console, teardown: bool = True) -> tuple[dict, float]:
    """(in-process phases, process wall) of PLAIN in the backend's environment, warmed once."""
    how = "teardown" if teardown else "skip-teardown"
    cmd = [str(envs.ensure(backend, log=console.print)), "-c", PLAIN, source.target, source.inputs, how]
    env = {**os.environ, "KERAS_BACKEND": backend}
    run = lambda: subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)  # noqa: E731
    run()  # warm: page cache, compiled bytecode
    proc, wall = _timed(run)
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def bench_user(args, selection, console, settings: Settings = USERS) -> int:
    """A user model (--model-file with --inputs) through the suite's runner against the same
    load and calls in a plain script, backend by backend, each warmed once."""
    from keras_parity.judge.evaluate import evaluate

    registry = selection.registry
    source = registry[selection.models[-1]].source
    if source.kind != "file" or not source.inputs:
        raise UsageError("the overhead benchmark takes --model-file with --inputs")
    out = Path(tempfile.mkdtemp(prefix="keras-parity-bench-user-"))
    plan = RunPlan(backends=[], models=[source.name], registry=registry, settings=settings)
    t = Table(title=f"{source.name}: the suite's runner vs a plain script (seconds; one process each)")
    cols = ("plain wall", "no teardown", "plain load + compute", "runner wall", "runner load + calls", "overhead")
    for col in ("backend", *cols):
        t.add_column(col, justify="left" if col == "backend" else "right")
    runs, failed = {}, 0
    for b in args.backend or list(BACKENDS):
        phases, plain_wall = _plain(b, source, console)
        _, quick_wall = _plain(b, source, console, teardown=False)
        service.run(plan, into=out / "warm", backends=[b], log=console.print)
        r = service.run(plan, into=out / b, backends=[b], log=console.print)[b]
        if r.failure(source.name):
            console.print(f"[red]{b}: {r.failure(source.name)}[/]")
            failed += 1
            continue
        runs[b], tm = r, r.timings
        own = phases["load"] + phases["compute"]
        t.add_row(
            b,
            f"{plain_wall:.2f}",
            f"{quick_wall:.2f}",
            f"{own:.2f}",
            f"{r.wall:.2f}",
            f"{tm['build'] + tm['first_call']:.2f}",
            f"{r.wall - quick_wall:+.2f} ({(r.wall - quick_wall) / own:+.2f}x of load + compute)",
        )
    console.print(t)
    console.print(
        "overhead: the runner's wall minus the plain script's without interpreter teardown (which the "
        "runner skips too); the runner keeps JAX's compiled programs in a persistent cache"
    )
    _, judge = _timed(lambda: evaluate(runs, [source.name], registry, selection.golden_dir))
    console.print(f"judging the cells against the goldens: {judge:.3f} s (harness side, once per run)")
    return Exit.INFRA if failed else Exit.OK  # a backend that did not run

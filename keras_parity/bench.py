"""`nox -s bench`: the parity run's time and memory next to a naive baseline, same machine, same run.

Naive baseline: the same models and cases, backend after backend, every cell through the
eager call, no JAX compilation cache. Both sides include process start and imports.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.table import Table

from keras_parity.run import run_backends
from keras_parity.spec import BACKENDS
from models.registry import REGISTRY

PHASES = ("import", "build", "set_weights", "first_call", "steady_call", "training")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench(args, console) -> int:
    backends = args.backend or list(BACKENDS)
    models = args.model or list(REGISTRY)
    out = Path(tempfile.mkdtemp(prefix="keras-parity-bench-"))
    # Warm-up: environments exist and the compilation cache is filled, as for a user's rerun.
    run_backends(backends, models, out / "warm", log=console.print)
    runs, wall = _timed(lambda: run_backends(backends, models, out / "parity", log=console.print))
    # The same run without the training path, right after: what gradients and steps add.
    _, forward_wall = _timed(lambda: run_backends(backends, models, out / "forward", training=False, log=console.print))
    steady = run_backends(backends, models, out / "steady", repeat=True, log=console.print)
    naive_wall, naive = 0.0, {}
    for b in backends:
        r, t = _timed(lambda b=b: run_backends([b], models, out / "naive", naive=True, log=console.print))
        naive[b], naive_wall = r[b], naive_wall + t
    failed = [b for b, r in {**runs, **naive}.items() if r.error]
    for b in failed:
        console.print(f"[red]{b}: {(runs[b].error or naive[b].error)}[/]")
    t = Table(title="parity run, per backend process (seconds; peak RSS in MB)")
    for col in ("backend", "run", *PHASES, "process wall", "peak RSS"):
        t.add_column(col, justify="left" if col in ("backend", "run") else "right")
    for b in backends:
        for label, r in (("parity", runs[b]), ("naive", naive[b])):
            tm = {**r.meta.get("timings", {}), "steady_call": steady[b].meta.get("timings", {}).get("steady_call", 0)}
            if label == "naive":
                tm["steady_call"] = 0.0
            t.add_row(
                b,
                label,
                *(f"{tm.get(p, 0):.2f}" for p in PHASES),
                f"{r.wall:.2f}",
                f"{r.meta.get('peak_rss_mb', 0):.0f}",
            )
    console.print(t)
    if args.docker:
        _container_overhead(backends, models, out, runs, console)
    ratio = wall / naive_wall if naive_wall else float("nan")
    added = wall - forward_wall
    console.print(
        f"parity run wall time: {wall:.1f} s (backends side by side, compiled path, caches)\n"
        f"forward cases only (--no-training): {forward_wall:.1f} s; the training path adds {added:.1f} s, "
        f"{added / forward_wall:.2f}x the forward run (target <= 1.00)\n"
        f"naive baseline wall time: {naive_wall:.1f} s (backend after backend, eager, no caches)\n"
        f"ratio: {ratio:.2f} (target <= 0.40); forward parity under 15 s: {'yes' if forward_wall < 15 else 'no'}; "
        f"peak RSS max {max(r.meta.get('peak_rss_mb', 0) for r in runs.values()):.0f} MB (target < 2048)"
    )
    console.print("steady_call comes from a separate run that calls each compiled case twice.")
    return 1 if failed else 0


def _container_overhead(backends, models, out, local, console) -> None:
    """Each backend's container against its local process, same work, same run."""
    run_backends(backends, models, out / "docker-warm", docker=True, log=console.print)  # fills the cache volume
    boxed, wall = _timed(lambda: run_backends(backends, models, out / "docker", docker=True, log=console.print))
    t = Table(title="container overhead (seconds of wall time, same models, warm caches)")
    for col in ("backend", "local", "container", "overhead", "in-process total (local / container)"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for b in backends:
        if boxed[b].error:
            console.print(f"[red]{b} in docker: {boxed[b].error}[/]")
            continue
        lt, ct = local[b].meta.get("timings", {}), boxed[b].meta.get("timings", {})
        t.add_row(
            b,
            f"{local[b].wall:.2f}",
            f"{boxed[b].wall:.2f}",
            f"{boxed[b].wall - local[b].wall:+.2f}",
            f"{lt.get('total', 0):.2f} / {ct.get('total', 0):.2f}",
        )
    console.print(t)
    console.print(f"parity run in containers: {wall:.1f} s")

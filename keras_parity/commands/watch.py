"""`keras-parity watch`: the watch list's reproducers on each backend, beside golden/watch.json."""

from __future__ import annotations

import argparse
import json
import subprocess

from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit
from keras_parity.registry.spec import BACKENDS

HELP = "run the watch list of upstream discrepancies on each backend and compare with golden/watch.json"
NEEDS_CHECKOUT = True  # golden/watch.json is a checkout's


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("watch", help=HELP, description=HELP)
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.add_argument(
        "--update", action="store_true", help="record what was observed in golden/watch.json (after checking it)"
    )
    p.add_argument(
        "--releases",
        action="store_true",
        help="when each case appeared: every keras release and every backend release of the drift matrix",
    )
    return p


def observe(backend: str, python, log=print) -> object:
    """A BackendRun-like record of one backend's observations, from `python -m keras_parity.watch`."""
    from keras_parity.errors import InfraError
    from keras_parity.run.launch import child_env
    from keras_parity.run.record import BackendRun, Provenance

    env = {**child_env(), "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(python), "-m", "keras_parity.watch"], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not proc.stdout.strip():
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"the watch list did not run on {backend}: {why}")
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    run = BackendRun(backend, watch=seen["watch"])
    run.provenance = Provenance(versions=seen["versions"])
    return run


def run(args, console) -> Exit:
    from keras_parity import golden
    from keras_parity.report.watch import print_table
    from keras_parity.run import envs
    from keras_parity.watch import judge as watched

    backends = pick("backend", args.backend, BACKENDS)
    if args.releases:
        return _releases(backends, args.update, console)
    runs = {b: observe(b, envs.ensure(b, log=console.print)) for b in backends}
    expected = watched.load()
    results = watched.judge(runs, expected)
    print_table(results, console)
    console.print(watched.line(results, expected) or "the watch list is empty", soft_wrap=True)
    if args.update:
        golden.write_json(watched.WATCH_FILE, watched.updated(results, expected))
        console.print(f"recorded in {watched.WATCH_FILE}")
        return Exit.OK
    return Exit.REGRESSION if expected is not None and any(r.failed for r in results) else Exit.OK


def _releases(backends: list[str], update: bool, console) -> Exit:
    """Every case along both axes of the drift matrix: its states and the release it appeared in."""
    from keras_parity import golden
    from keras_parity.report.watch import print_releases
    from keras_parity.watch import CASES, releases
    from keras_parity.watch import judge as watched

    seen = releases.sweep(backends, log=console.print)
    history = {(c.id, b): releases.by_axis(seen, c.id, b) for c in CASES for b in backends}
    print_releases(history, console)
    if update:
        data = watched.load() or {"cases": {}}
        for (case, backend), axes in history.items():
            entry = data["cases"].setdefault(case, {"upstream": "", "backends": {}})["backends"]
            state = entry.setdefault(backend, {})
            state["releases"] = {axis: releases.strip(s) for axis, s in axes.items()}
            state["since"] = {axis: releases.since(s) for axis, s in axes.items()}
        golden.write_json(watched.WATCH_FILE, data)
        console.print(f"recorded in {watched.WATCH_FILE}")
    return Exit.OK

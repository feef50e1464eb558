"""Fault injection, counted: `golden` killed with SIGKILL at every step of its commit and at random
moments, `parity` interrupted (Ctrl-C, SIGTERM, SIGKILL) at random moments, and two commands
started at once. Prints one row per fault kind: runs, what each left on disk and in the process
table. The pytest tests hold the same properties for a few fixed points; this walks many.

    PYTHONPATH=. .nox/tests/bin/python tests/fault_campaign.py [--kills 10] [--interrupts 3] [--seed 0]

Works in a temporary folder on a copy of golden/linear (never on golden/ itself); needs the
jax and torch environments (`nox -s parity` makes them).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--model", "linear", "--backend", "jax"]


def command(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m keras_parity ARGS` from the checkout, its output captured."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "keras_parity", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def files(folder: Path) -> dict[str, bytes]:
    """A golden set's files (not the obtained arrays a `parity` leaves beside them)."""
    found = (p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".obtained.npz"))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in found}


def seed(into: Path) -> Path:
    """golden/linear copied with its three reference files corrupt: the set `golden` must repair."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(ROOT / "golden" / "linear", into / "linear", ignore=shutil.ignore_patterns("*.obtained.npz"))
    (into / "linear" / "reference.npz").write_bytes(b"PK\x03\x04 cut short")
    (into / "linear" / "reference.json").write_text("[]")
    (into / "linear" / "graph.json").write_text('{"builders": 5}')
    return into


def running(text: str, settle: float = 3.0) -> int:
    """How many processes still name `text` on their command line `settle` seconds from now."""
    time.sleep(settle)
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[1][0]
        except (OSError, IndexError):
            continue
        count += entry.name.isdigit() and text in cmd and state != "Z" and int(entry.name) != os.getpid()
    return count


class Tally:
    """Rows of the campaign: fault kind -> Counter of outcomes."""

    def __init__(self) -> None:
        self.rows: dict[str, Counter] = {}

    def add(self, kind: str, **outcome: int) -> None:
        self.rows.setdefault(kind, Counter()).update(outcome)

    def print(self) -> None:
        print()
        for kind, c in self.rows.items():
            outcomes = ", ".join(f"{k} {n}" for k, n in sorted(c.items()) if k != "runs")
            print(f"{kind}: {c['runs']} runs; {outcomes}")


def golden_kills(work: Path, tally: Tally, kills: int, rng: random.Random) -> None:
    old = files(seed(work / "seed") / "linear")
    t0 = time.perf_counter()
    whole = command("golden", "--golden-dir", str(seed(work / "whole")), "--out", str(work / "o-whole"), *ARGS)
    _, err = whole.communicate()
    assert whole.returncode == 0, err
    duration, new = time.perf_counter() - t0, files(work / "whole" / "linear")
    print(f"a whole `golden` of linear on jax: {duration:.1f} s")
    past_last = False  # a run outlived its stop: every step has been a kill point
    steps = [("step", s) for s in range(1, 30)]
    for how, at in steps + [("random", rng.uniform(0.2, duration)) for _ in range(kills)]:
        if how == "step" and past_last:
            continue
        gd, out = seed(work / "g"), work / "o"
        env = {"KERAS_PARITY_GOLDEN_STOP_AT": str(at)} if how == "step" else {}
        proc = command("golden", "--golden-dir", str(gd), "--out", str(out), *ARGS, env=env)
        if how == "random":
            try:
                proc.wait(timeout=at)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()
        if how == "step" and proc.returncode == 0:
            past_last = True
            continue
        got = files(gd / "linear")
        state = "left old set" if got == old else "left new set" if got == new else "left a MIX"
        strays = [p.name for p in gd.iterdir() if p.name != "linear"]
        tally.add(
            f"golden SIGKILL ({'each commit step' if how == 'step' else 'random moment'})",
            runs=1,
            **{state: 1, "killed": proc.returncode == -9, "staging left (next golden removes)": bool(strays)},
            **{"processes left after 3 s": running(str(out))},
        )
        repair = command("golden", "--golden-dir", str(gd), "--out", str(out), *ARGS)
        repair.communicate()
        fixed = repair.returncode == 0 and files(gd / "linear") == new and [p.name for p in gd.iterdir()] == ["linear"]
        tally.add(f"golden SIGKILL ({'each commit step' if how == 'step' else 'random moment'})", repaired=fixed)


def interrupts(work: Path, tally: Tally, each: int, rng: random.Random) -> None:
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        for i in range(each):
            out = work / f"p-{sig.name}-{i}"
            proc = command("parity", "--model", "linear", "--backend", "jax", "--backend", "torch", "--out", str(out))
            at = rng.uniform(1.0, 12.0)
            try:
                proc.wait(timeout=at)
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
            _, err = proc.communicate()
            one_line = sig == signal.SIGKILL or (err.strip().count("\n") == 0 and "Traceback" not in err)
            tally.add(
                f"parity {sig.name} (random moment)",
                runs=1,
                **{f"exit {code}": proc.returncode == code, "finished first": proc.returncode == 0},
                **{"one error line": one_line, "processes left after 3 s": running(str(out))},
            )


def at_once(work: Path, tally: Tally, times: int, rng: random.Random) -> None:
    for i in range(times):
        out = work / f"same-{i}"
        busy = ["--model", "linear", "--model", "cnn", "--model", "lstm", "--backend", "jax", "--backend", "torch"]
        first = command("parity", *busy, "--out", str(out))
        while not (out / ".lock").exists() and first.poll() is None:  # the first holds the folder
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        second = command("golden", *ARGS, "--out", str(out), "--golden-dir", str(seed(work / f"gs-{i}")))
        _, err2 = second.communicate()
        overlap = first.poll() is None  # the first still running when the second ended
        _, err1 = first.communicate()
        tally.add(
            "parity and golden at once, one --out",
            runs=1,
            **{"second refused (exit 2)": second.returncode == 2 and "another keras-parity command" in err2},
            **{"second passed while the first ran (a collision)": second.returncode == 0 and overlap},
            **{"second ran after the first ended": second.returncode == 0 and not overlap},
            **{"first passed": first.returncode == 0, "processes left after 3 s": running(str(out))},
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10, help="golden runs killed at random moments")
    ap.add_argument("--interrupts", type=int, default=3, help="parity runs per signal (SIGINT, SIGTERM, SIGKILL)")
    ap.add_argument("--at-once", type=int, default=3, help="pairs of commands started together")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("golden", "interrupts", "at-once"), help="one part of the campaign")
    args = ap.parse_args()
    rng, tally = random.Random(args.seed), Tally()
    before = subprocess.run(["git", "status", "--porcelain", "golden"], cwd=ROOT, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        parts = (("golden", golden_kills, args.kills), ("interrupts", interrupts, args.interrupts))
        for part, run, count in (*parts, ("at-once", at_once, args.at_once)):
            if args.only in (None, part):
                run(Path(tmp), tally, count, rng)
    after = subprocess.run(["git", "status", "--porcelain", "golden"], cwd=ROOT, capture_output=True).stdout
    tally.print()
    print(f"golden/ in the checkout: {'unchanged' if before == after else 'CHANGED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`parity --with keras==3.16.0 --with jax==0.11.0`: rehearse an upgrade before making it.

Each backend whose lock holds an overridden package gets a candidate lock: its pins with the
overrides, resolved by uv with the current lock as the preference, so that only what the
overrides force moves. The candidate environments live apart from the pinned ones
(<envs>/rehearse/<lock digest>/), are reused while their lock holds and never touch the
goldens: the pinned run and the candidate run are judged against the same goldens and set
side by side, cell by cell.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.exitcodes import from_verdicts
from keras_parity.judge.compare import CellResult
from keras_parity.pins import lock_inputs
from keras_parity.report import progress
from keras_parity.run import envs
from keras_parity.run.settings import USERS, Settings

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


class RehearsalError(UsageError):
    """An override that cannot be used; the message names it and the fix."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_overrides(specs: list[str]) -> dict[str, str]:
    """{normalised name: 'name==version'} from `--with` values, refused by name when not a pin."""
    out = {}
    for spec in specs:
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", spec)
        if not m:
            raise RehearsalError(f"--with {spec!r} is not a pin; write it as NAME==VERSION, e.g. --with keras==3.16.0")
        out[_norm(m.group(1))] = f"{m.group(1)}=={m.group(2)}"
    return out


def _locked_names(lock_text: str) -> set[str]:
    return {_norm(m.group(1)) for line in lock_text.splitlines() if (m := _NAME.match(line))}


def affected(backend: str, overrides: dict[str, str], platform: str | None = None) -> bool:
    """Whether the backend's lock holds any overridden package (else its pinned run stands)."""
    return bool(_locked_names(envs.lock_file(backend, platform=platform).read_text()) & set(overrides))


def candidate_lock(backend: str, overrides: dict[str, str], out_dir: Path, platform: str | None = None) -> Path:
    """The backend's lock with the overrides, resolved by uv from its pins (the current lock as
    the preference: every other version stays where the overrides allow). A resolution that
    fails is one line naming the override and uv's reason."""
    from keras_parity.lockfiles import PYTHON, platforms

    plat = platform or envs.host_platform()
    pinned = envs.lock_file(backend, platform=plat)
    pins = [ln for ln in lock_inputs()[backend] if not ((m := _NAME.match(ln)) and _norm(m.group(1)) in overrides)]
    requirements = pins + list(overrides.values())
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "in.txt").write_text("\n".join(requirements) + "\n")
        shutil.copy2(pinned, work / "lock.txt")  # uv prefers the versions already in its output
        cmd = [
            *envs.uv(), "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
            "--python-version", PYTHON, "--python-platform", platforms()[plat],
            "--no-emit-find-links", "--no-emit-index-url", *envs.index_args("\n".join(requirements)),
            "in.txt", "-o", "lock.txt",
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            wanted = " ".join(overrides.values())
            raise RehearsalError(
                f"{wanted} cannot be installed with the rest of the {backend} lock: {_conflict(proc.stderr)}; "
                "pick versions that fit together or override the conflicting one too"
            )
        text = (work / "lock.txt").read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    lock = out_dir / f"{backend}-{digest}.txt"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(text)
    return lock


def _conflict(stderr: str) -> str:
    """uv's reason, in one line: its 'Because A depends on B ...' chain names the conflict."""
    lines = [ln.strip().removeprefix("cause:").strip() for ln in stderr.splitlines() if ln.strip()]
    chain = [ln for ln in lines if ln.startswith(("Because", "And because"))]
    return " ".join(chain) if chain else envs.last_line(stderr)


def candidate_env(backend: str, lock: Path, log=print) -> Path:
    """A throwaway environment synced from the candidate lock, reused while the lock holds."""
    return envs.provision(envs.env_root() / "rehearse" / lock.stem, lock, f"the candidate {backend} environment", log)


def changed_pins(pinned: Path, candidate: Path) -> list[str]:
    """'name old -> new' for every package whose version the overrides moved."""

    def versions(path: Path) -> dict[str, str]:
        return {_norm(n): v for n, v in envs.locked(path.read_text()).items()}

    old, new = versions(pinned), versions(candidate)
    return [
        f"{n} {old.get(n, '-')} -> {new.get(n, '-')}" for n in sorted(set(old) | set(new)) if old.get(n) != new.get(n)
    ]


def _moved_line(lines: list[str], overrides: list[str]) -> str:
    """The overridden packages' moves, then how many others followed (a CUDA build of torch
    brings some twenty nvidia-* packages)."""
    asked = {_norm(o.split("==")[0]) for o in overrides}
    mine = [ln for ln in lines if ln.split()[0] in asked]
    rest = [ln.split()[0] for ln in lines if ln.split()[0] not in asked]
    more = (
        f"; {len(rest)} more moved or added ({', '.join(rest[:4])}{', ...' if len(rest) > 4 else ''})" if rest else ""
    )
    return ("; ".join(mine) or "no version moved") + more


@dataclass(frozen=True)
class Pair:
    """One cell, pinned and candidate."""

    pinned: CellResult | None
    candidate: CellResult | None

    @property
    def cell(self) -> CellResult:
        cell = self.candidate or self.pinned
        assert cell is not None, "a pair holds at least one of its cells"
        return cell

    @property
    def moved_defaults(self) -> list[str]:
        """The candidate's findings of a Keras default (optimizer, loss, layer) that moved."""
        return [f.message for f in (self.candidate.findings if self.candidate else []) if f.kind == "default"]


def pairs(pinned: list[CellResult], candidate: list[CellResult]) -> list[Pair]:
    """The cells of both runs matched by identity, in the pinned run's order."""
    by_id = {c.id: c for c in candidate}
    out = [Pair(p, by_id.pop(p.id, None)) for p in pinned]
    return out + [Pair(None, c) for c in by_id.values()]


def _worst(cell: CellResult | None, attr: str) -> float | None:
    values = [getattr(m, attr) for m in (cell.outputs.values() if cell else ()) if getattr(m, attr) is not None]
    return max(values, default=None)


def row(pair: Pair, candidate_logs: Path | None = None) -> dict:
    """The table's row of one cell: rel L2 and bit distance before and after, both verdicts; a
    candidate's ERROR names its backend's log in `candidate_logs` (the whole traceback is there)."""
    p, c = pair.pinned, pair.candidate
    problems = c.problems if c and c.status != "pass" else []
    if c and c.status == "error" and candidate_logs is not None:
        problems = [*problems, f"the candidate's log: {candidate_logs / f'{c.backend}.log'}"]
    return {
        "cell": f"{pair.cell.name} ({pair.cell.backend}/{pair.cell.label})",
        "rel_l2": [_worst(p, "rel_l2"), _worst(c, "rel_l2")],
        "ulp_scaled": [_worst(p, "ulp_scaled"), _worst(c, "ulp_scaled")],
        "verdict": [p.status if p else "-", c.status if c else "-"],
        "defaults": pair.moved_defaults,
        "problems": problems,
    }


def rehearse(
    args, backends: list[str], selection, log=print, settings: Settings = USERS
) -> tuple[list[dict], dict[str, list[str]], dict]:
    """(one row per cell, the pins each candidate moved per backend, the candidate runs): the
    pinned and the candidate runs of the backends the overrides touch, judged against the same
    goldens. `selection`: the models (keras_parity/registry/select.py)."""
    from keras_parity.run import images, service
    from keras_parity.run.flags import RunFlags

    overrides = parse_overrides(args.with_)
    out = args.out / "rehearse"
    # Docker: the images' platform (Linux of this architecture), whatever the host.
    plat = images.IMAGE_PLATFORM if args.docker else None
    locks, moved = {}, {}
    for b in backends:
        if affected(b, overrides, plat):
            locks[b] = candidate_lock(b, overrides, out / "locks", plat)
            moved[b] = changed_pins(envs.lock_file(b, platform=plat), locks[b])
    if not locks:
        names = ", ".join(overrides)
        raise RehearsalError(
            f"no lock of {', '.join(backends)} holds {names}; "
            f"name a package of requirements/{envs.host_platform()}/<backend>.txt"
        )
    plan = service.RunPlan(
        backends=list(locks), models=selection.models, registry=selection.registry,
        flags=RunFlags(device=args.device, training=args.training, watch=True), settings=settings,
        docker=args.docker,
        golden_dir=selection.golden_dir,
    )  # fmt: skip
    judging = {"training": args.training}
    pinned = service.rerun(plan, into=out / "pinned", judging=judging, log=log)[1]
    if args.docker:
        bases = {b: images.base_of(b) for b in locks}  # built on what the pinned image was
        with images.candidate_locks(locks):
            for b, lock in locks.items():
                log(f"building the candidate {b} image from {lock.name}")
                images.build(b, base_image=bases[b], log=log)
            runs, candidate = service.rerun(plan, into=out / "candidate", judging=judging, log=log)
    else:
        python = {b: candidate_env(b, lock, log=log) for b, lock in locks.items()}
        runs, candidate = service.rerun(plan, into=out / "candidate", judging=judging, python=python, log=log)
    return [row(p, out / "candidate") for p in pairs(pinned, candidate)], moved, runs


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}" if x < 1e3 else f"{x:.3g}"


def print_table(rows: list[dict], moved: dict[str, list[str]], overrides: list[str], console) -> None:
    from rich.table import Table

    for backend, lines in moved.items():
        console.print(f"{backend} candidate: {_moved_line(lines, overrides)}", soft_wrap=True, markup=False)
    t = Table(title=f"rehearsal of {' '.join(overrides)}: pinned -> candidate, against the same goldens")
    for col in ("cell", "rel L2", "ulp@max vs snapshot", "verdict"):
        t.add_column(col, justify="left" if col in ("cell", "verdict") else "right", no_wrap=col != "cell")
    style = {"pass": "green", "fail": "bold red", "error": "bold magenta"}
    for r in rows:
        (a, b), (u, v), (p, c) = r["rel_l2"], r["ulp_scaled"], r["verdict"]
        verdict = f"{p} -> [{style.get(c, 'yellow')}]{c}[/]" if p != c else f"[{style.get(c, 'yellow')}]{c}[/]"
        t.add_row(r["cell"], f"{_fmt(a)} -> {_fmt(b)}", f"{_fmt(u)} -> {_fmt(v)}", verdict)
    console.print(t)
    for r in rows:
        for line in r["defaults"] + [p for p in r["problems"] if p not in r["defaults"]]:
            console.print(f"{r['cell']}: {line}", soft_wrap=True, markup=False)


def main(args, backends: list[str], selection, console, settings: Settings = USERS) -> int:
    import json

    from keras_parity.watch import judge as watched

    with progress.status(console, f"rehearsing {' '.join(args.with_)}"):
        rows, moved, runs = rehearse(args, backends, selection, log=console.print, settings=settings)
    print_table(rows, moved, args.with_, console)
    # the watch list under the candidate releases: a case they fix or bring is named with them
    expected = watched.load()
    results = watched.judge(runs, expected)
    moved_watch = [r for r in results if r.failed] if expected is not None else []
    said = watched.line(results, expected)
    if said:
        console.print(f"candidate: {said}", soft_wrap=True, markup=False)
    path = args.out / "rehearse" / "rehearsal.json"
    path.write_text(json.dumps({"with": args.with_, "moved": moved, "cells": rows}, indent=1) + "\n")
    console.print(f"{len(rows)} cells; the goldens are untouched; rehearsal in {path}", soft_wrap=True)
    return from_verdicts([*(r["verdict"][1] for r in rows), *("fail" for _ in moved_watch)])

"""The watch list judged: what each backend process observed (BackendRun.watch) set beside
the expected states in golden/watch.json, one WatchResult per case and backend.

golden/watch.json: {"cases": {case id: {"upstream": link or "", "backends": {backend:
{"state": "present" | "absent", "seen": "keras=3.15.1;torch=2.13.0+cpu", "measure": 1e-7}}}}}.
A case whose state moved is a failure until the file says so: `fixed` (present before, gone
now: the release that fixed it is in the run's versions), `appeared` (absent before), `error`
(the reproducer itself raised), `unrecorded` (no entry for it yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keras_parity import golden, paths
from keras_parity.watch import CASES

WATCH_FILE = paths.GOLDEN / "watch.json"
UPDATE = "`nox -s watch -- --update`"
_LIBRARY = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}


@dataclass(frozen=True)
class WatchResult:
    case: str
    backend: str
    expected: str | None  # 'present' | 'absent'; None: golden/watch.json has no entry
    observed: bool | None  # None: the reproducer raised
    measure: float | None
    detail: str
    releases: str  # keras and the backend library as the run had them

    @property
    def status(self) -> str:
        if self.observed is None:
            return "error"
        if self.expected is None:
            return "unrecorded"
        now = "present" if self.observed else "absent"
        if now == self.expected:
            return "still " + now
        return "fixed" if self.expected == "present" else "appeared"

    @property
    def failed(self) -> bool:
        return not self.status.startswith("still ")


def releases(versions: dict[str, str], backend: str) -> str:
    """'keras=3.15.1;torch=2.13.0+cpu': the releases a watch state was seen on."""
    names = ("keras", *_LIBRARY.get(backend, (backend,)))
    return ";".join(f"{n}={versions[n]}" for n in names if n in versions)


def load(path: Path = WATCH_FILE) -> dict | None:
    """The expected states, or None where there are none (an installed package has no golden/)."""
    return golden.read_json(path) if path.exists() else None


def judge(runs: dict, expected: dict | None) -> list[WatchResult]:
    """Every observed case of every run (BackendRun.watch), in CASES order then backend order."""
    cases = (expected or {}).get("cases", {})
    out = []
    for case in CASES:
        for backend, run in runs.items():
            seen = (getattr(run, "watch", None) or {}).get(case.id)
            if seen is None:
                continue
            state = cases.get(case.id, {}).get("backends", {}).get(backend, {}).get("state")
            detail = seen.get("detail") or seen.get("error", "")
            out.append(
                WatchResult(
                    case.id, backend, state, seen.get("present"), seen.get("measure"), detail,
                    releases(run.versions, backend),
                )
            )  # fmt: skip
    return out


def line(results: list[WatchResult], expected: dict | None) -> str:
    """The report's one line: how many known discrepancies, how many still present; what moved."""
    if not results:
        return ""
    known = {r.case for r in results if r.expected == "present"}
    still = {r.case for r in results if r.status == "still present"}
    if expected is None:
        seen = len({r.case for r in results if r.observed})
        return f"watch list: {seen} upstream discrepancies observed (no {WATCH_FILE.name} to compare with)"
    text = f"{len(known)} known upstream discrepancies: {len(still & known)} still present"
    moved = [r for r in results if r.failed]
    if moved:
        said = "; ".join(f"{r.case} {r.status} on {r.backend} ({r.releases})" for r in moved[:4])
        more = f" and {len(moved) - 4} more" if len(moved) > 4 else ""
        text += f"; FAIL {said}{more}: check it and record it with {UPDATE}"
    return text


def updated(results: list[WatchResult], expected: dict | None) -> dict:
    """golden/watch.json with every observed state recorded (`nox -s watch -- --update`)."""
    data = {"cases": {k: dict(v) for k, v in (expected or {}).get("cases", {}).items()}}
    for case in CASES:
        entry = data["cases"].setdefault(case.id, {})
        entry["upstream"] = case.upstream
        entry.setdefault("backends", {})
    for r in results:
        if r.observed is None:
            continue  # a reproducer that raised keeps its last recorded state
        state = {"state": "present" if r.observed else "absent", "seen": r.releases, "measure": r.measure}
        backends = data["cases"][r.case]["backends"]
        backends[r.backend] = {**backends.get(r.backend, {}), **state}  # its releases' sweep stays
    return data

"""The watch list as a table: one row per case, a column per backend (expected → observed)."""

from __future__ import annotations

from rich.table import Table

_MARK = {"still present": "present", "still absent": "-", "fixed": "FIXED", "appeared": "APPEARED"}


def print_table(results, console) -> None:
    """Each case's state on each backend (its measure where present), and its detail where it moved."""
    backends = list(dict.fromkeys(r.backend for r in results))
    table = Table(title="watch list: upstream discrepancies", title_justify="left")
    table.add_column("case")
    for b in backends:
        table.add_column(b, justify="right")
    for case in dict.fromkeys(r.case for r in results):
        mine = {r.backend: r for r in results if r.case == case}
        table.add_row(case, *(_cell(mine.get(b)) for b in backends))
    console.print(table)
    for r in results:
        if r.failed:
            console.print(f"{r.status.upper()} {r.case} on {r.backend} ({r.releases}): {r.detail}", soft_wrap=True)


def _cell(r) -> str:
    if r is None:
        return ""
    mark = _MARK.get(r.status, r.status.upper())
    return f"{mark} {r.measure:.1e}" if r.observed and r.measure is not None else mark


def print_releases(history: dict, console) -> None:
    """Per case and backend: its state at each release on both axes (+ present, - absent, E the
    reproducer raised, x the cell could not run) and the release it is present from."""
    from keras_parity.watch.releases import since, strip

    table = Table(title="watch list across releases (+ present, - absent, E raised, x not run)", title_justify="left")
    for col in (
        "case",
        "backend",
        "keras releases (newest backend)",
        "backend releases (newest keras)",
        "present since",
    ):
        table.add_column(col)
    for (case, backend), axes in history.items():
        keras_axis, library_axis = axes["keras"], axes[backend]
        first = [f"keras {k}" for k in [since(keras_axis)] if k] + [
            f"{backend} {v}" for v in [since(library_axis)] if v
        ]
        table.add_row(case, backend, strip(keras_axis), strip(library_axis), ", ".join(first) or "-")
    console.print(table)

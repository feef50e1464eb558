"""`keras-parity drift`: the matrix, one cell, --bisect, --prune, --new, the report, your own
models (their history beside their goldens), and the scale-out: --list-groups and --group
split the cells over jobs, --merge joins their result folders."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from keras_parity import golden
from keras_parity.commands.arguments import model_arguments, user_path
from keras_parity.commands.selection import models as chosen_models
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.paths import RESULTS, ROOT
from keras_parity.registry import usermodel
from keras_parity.registry.spec import BACKENDS

NEEDS_CHECKOUT = True  # the drift history and matrix are the checkout's


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "drift",
        help="run the drift matrix of requirements/pins.toml and append to golden/drift/history.csv",
        description="Run the default window of the drift matrix (or --full, or one cell such as "
        "`keras=3.14.1 jax=0.9.2`), append the rows to golden/drift/history.csv and rewrite the report.",
    )
    p.add_argument(
        "cell",
        nargs="*",
        help="one cell, e.g. keras=3.14.1 jax=0.9.2 (keras defaults to the newest); with --bisect, "
        "the release held on the other axis, e.g. keras=3.14.1 or torch=2.13.0+cpu",
    )
    p.add_argument("--full", action="store_true", help="the whole matrix instead of the newest releases")
    p.add_argument("--backend", action="append", choices=BACKENDS, help="only this backend (repeatable)")
    model_arguments(p, "your model's golden folder (as for parity); its history and report go to <golden-dir>/drift/")
    p.add_argument(
        "--new",
        action="store_true",
        help="ask PyPI for newer releases, add the installable ones to the matrix and run their cells",
    )
    p.add_argument(
        "--axis",
        action="append",
        choices=("keras", "library"),
        help="walk every release of one axis, the newest release held on the other (repeatable)",
    )
    p.add_argument("--bisect", nargs=3, metavar=("LIB", "LO", "HI"), help="first release in LO..HI changing numbers")
    p.add_argument("--jobs", type=int, default=2, help="cells run at once (default 2: one per core)")
    p.add_argument("--prune", action="store_true", help="remove cached environments of cells outside the matrix")
    p.add_argument(
        "--out",
        type=user_path,
        default=user_path(str(RESULTS / "drift")),
        help="scratch space for the runs; with --group, the results folder (history.csv, snapshots/)",
    )
    p.add_argument(
        "--group",
        metavar="I/N",
        help="only group I of N of the selected cells; rows go to OUT/history.csv, not golden/drift",
    )
    p.add_argument(
        "--list-groups",
        type=int,
        metavar="N",
        help="print the N groups of the selected cells as a GitHub Actions matrix (JSON) and exit",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="merge the history rows and snapshots of --group result folders into golden/drift and rewrite the report",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.report import progress

    with progress.live(console):  # environment installs and cells as bars on a terminal
        return Exit(_drift(args, console))


def _drift(args, console) -> int:
    from keras_parity.drift import cellenv, groups, history, matrix, report
    from keras_parity.drift.bisect import bisect
    from keras_parity.drift.driver import DRIFT, run_cells

    t0 = time.perf_counter()
    # plain text: a requirement such as jax[cpu] is not markup
    log = lambda *a: console.print(*a, markup=False)  # noqa: E731
    m = matrix.load()
    if args.merge:
        history.read()  # a corrupt history stops everything before anything is merged
        return _merge(args.merge, console)
    selection = chosen_models(args, console)  # built-in names, then the user's models
    models, registry = selection.models, selection.registry
    # each model's history and report sit beside its goldens: golden/drift/ for the built-in ones
    folders: dict[Path, list[str]] = {}
    for name in models:
        folders.setdefault(usermodel.root_of(registry[name], DRIFT.parent) / "drift", []).append(name)
    for where in folders:
        history.read(where / history.HISTORY.name)  # a corrupt history stops everything before any cell runs
    if args.prune:
        keep = {cellenv.key(m, c) for c in m.cells(BACKENDS, full=True)}
        left = cellenv.prune(keep, log=log)
        log(f"cached environments: {left / 1e3:.1f} GB left in {cellenv.root()}")
        return 0
    if args.bisect:
        return _bisect(args, m, folders, registry, bisect, history, report, log)
    m, cells = _selected_cells(args, m, log)
    if args.list_groups is not None:
        # plain stdout, one line: a workflow reads it into $GITHUB_OUTPUT
        print(json.dumps(groups.listing(cells, args.list_groups, lambda c: cellenv.key(m, c))))
        return 0
    outcomes = []
    if args.group:
        cells = groups.select(cells, args.group)
        path = args.out / "history.csv"
        history.read(path)  # resuming a group: its own rows must be sound too
        if not path.exists():  # an empty group still leaves a folder the merge accepts
            golden.write_bytes(path, history.serialize([]))
        log(f"group {args.group}: {', '.join(c.label for c in cells) or 'no cells'}")
        place = {"history_path": path, "root": args.out, "also": (DRIFT,)}
        place |= {"registry": registry, "jobs": args.jobs}
        outcomes = run_cells(m, cells, models, args.out / "runs", log=log, **place)
    else:
        for where, names in folders.items():
            hist = where / history.HISTORY.name
            place = {"registry": registry, "jobs": args.jobs, "history_path": hist, "root": where}
            outcomes += run_cells(m, cells, names, args.out, log=log, **place)
            path = report.write(hist, where / report.REPORT.name, where)
    limit = m.cache_limit_gb
    left = cellenv.prune({cellenv.key(m, c) for c in cells}, limit_gb=limit, log=log)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    log(f"{len(outcomes)} cells ran in {time.perf_counter() - t0:.0f} s; {'rows' if args.group else 'report'}: {shown}")
    log(f"cached environments: {left / 1e3:.1f} GB in {cellenv.root()} (cap {limit:g} GB; --prune to empty)")
    return from_verdicts(r["verdict"] for o in outcomes for r in o.rows)


def _selected_cells(args, m, log) -> tuple:
    """(the matrix, the cells asked for): --new's releases (added to the matrix), one cell, or a window."""
    from keras_parity.drift import matrix, releases

    if args.new:
        added = releases.discover(m, log=log)
        m = matrix.load()
        return m, [c for c in releases.new_cells(m, added) if c.backend in (args.backend or BACKENDS)]
    if args.cell:
        return m, [m.parse_cell(args.cell)]
    return m, m.cells(args.backend or BACKENDS, full=args.full, axes=args.axis or ())


def _bisect(args, m, folders, registry, bisect, history, report, log) -> int:
    """--bisect: per golden folder, the first release in LO..HI whose numbers change."""
    lib, lo, hi = args.bisect
    held = None
    if args.cell:  # the release held on the other axis: `keras=3.15.1` or `torch=2.13.0+cpu`
        words = args.cell if any(not w.startswith("keras=") for w in args.cell) else [*args.cell, "jax=0.10.2"]
        held = m.parse_cell(words)
    for where, names in folders.items():
        hist = where / history.HISTORY.name
        place = {"registry": registry, "held": held, "root": where, "history_path": hist}
        found = bisect(m, lib, lo, hi, names, args.out, log=log, **place)
        for model, hit in found.items():
            if hit is None:
                log(f"{model}: the same bits from {lib} {lo} to {hi}")
            else:
                log(f"{model}: numbers change first at {lib} {hit[0]} (from {hit[1]}: max {hit[2]} ULP)")
        report.write(hist, where / report.REPORT.name, where)
    return 0


def _merge(folders: list[Path], console) -> int:
    """One history, snapshots and report from the checked-in drift folder and `folders`."""
    from keras_parity.drift import history, merge, report
    from keras_parity.drift.driver import DRIFT

    try:
        rows, conflicts = merge.merge(folders, DRIFT)
    except history.HistoryError as exc:  # the same error, saying that the merge left everything as it was
        raise history.HistoryError(f"{exc}; nothing was written") from exc
    for line in conflicts:
        console.print(f"[yellow]{line}[/]", soft_wrap=True)
    path = report.write(DRIFT / "history.csv", DRIFT / "report.md", DRIFT)
    console.print(f"merged {len(folders)} folders: {rows} rows in {DRIFT / 'history.csv'}; report: {path}")
    return Exit.REGRESSION if conflicts else Exit.OK  # rows that disagree are for a person to settle

"""`keras-parity report`: merge the result directories of several machines into one report."""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_parity import report
from keras_parity.commands.arguments import VERBOSE
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.paths import RESULTS

HELP = "merge result directories of several machines into one report"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help=HELP)
    p.add_argument("dirs", nargs="+", type=Path, help="directories written by `parity --out`")
    p.add_argument("--out", type=Path, default=RESULTS / "merged", help="where the merged report goes")
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    return p


def run(args, console) -> Exit:
    from keras_parity.pipeline import TABLE, show_report
    from keras_parity.report.merge import merge

    cells, runs = merge(args.dirs)
    show_report(cells, args.out, console, verbose=args.verbose)
    report.write_json(cells, runs, args.out / "parity.json")
    report.write_junit(cells, args.out / "parity.xml")
    console.print(
        f"merged {len(args.dirs)} result directories into {args.out / 'parity.json'}, parity.xml and {TABLE}",
        soft_wrap=True,
    )
    return from_verdicts(c.status for c in cells)

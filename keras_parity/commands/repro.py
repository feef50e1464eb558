"""`keras-parity repro`: one cell as a standalone script, its weights, inputs and float64 outputs."""

from __future__ import annotations

import argparse

from keras_parity.commands.arguments import common
from keras_parity.commands.selection import models as chosen_models
from keras_parity.exitcodes import Exit
from keras_parity.paths import RESULTS

HELP = "one cell as a standalone script, its weights, inputs and float64 outputs"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("repro", help=HELP)
    p.add_argument("cell", nargs="?", help="MODEL/CASE, e.g. lstm/lstm (a model given with --model-file: CASE or none)")
    common(p)
    p.set_defaults(out=RESULTS / "repro")
    return p


def run(args, console) -> Exit:
    from keras_parity import repro

    return Exit(repro.run(args, chosen_models(args, console), console))

"""`keras-parity zoo`: every keras.applications architecture and example model against float64."""

from __future__ import annotations

import argparse

from keras_parity.commands.arguments import user_path
from keras_parity.exitcodes import Exit
from keras_parity.paths import RESULTS

HELP = "every keras.applications architecture and example model against float64"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("zoo", help=HELP)
    p.add_argument("--model", action="append", help="only this model of the zoo (repeatable)")
    p.add_argument("--backend", action="append", choices=("tensorflow", "jax", "torch"), help="only this backend")
    p.add_argument("--ci", action="store_true", help="the cheap slice CI runs: the three example models")
    p.add_argument("--float64", action="store_true", help="also run every model under float64: does Keras honour it?")
    p.add_argument("--docker", action="store_true", help="run each backend in its image")
    p.add_argument(
        "--out", type=user_path, default=user_path(str(RESULTS)), help="where results are written (under zoo/)"
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.zoo import run as zoo_run

    return Exit(zoo_run.main(args, console))

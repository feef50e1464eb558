"""`keras-parity noise`: measure the float32 noise the built-in tolerances are derived from."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from keras_parity.commands.arguments import user_path
from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit

HELP = "measure the float32 noise of every built-in cell into models/noise.json (the tolerances' base)"
NEEDS_CHECKOUT = True  # it measures against the checkout's goldens and rewrites models/noise.json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("noise", help=HELP, description=HELP)
    p.add_argument("--out", type=user_path, help="keep the backends' runs here (default: a temporary folder)")
    p.add_argument(
        "--model",
        action="append",
        help="measure only this built-in model (repeatable); the other models' cells stay as they are",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity import golden
    from keras_parity.calibrate.noise import measure, merge
    from keras_parity.registry.builtin import builtin_registry
    from keras_parity.registry.noise import NOISE_FILE

    models = pick("built-in model", args.model, builtin_registry().builtin) if args.model else None
    old = golden.read_json(NOISE_FILE) if models and NOISE_FILE.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args.out or Path(tmp), log=console.print, models=models)
    written = merge(old, measured, models) if old and models else measured
    golden.write_json(NOISE_FILE, written)
    what = f"{len(measured['cells'])} cells of {', '.join(models)}" if models else f"{len(measured['cells'])} cells"
    console.print(f"{what} measured on {measured['platform']}; written to {NOISE_FILE}", soft_wrap=True)
    return Exit.OK

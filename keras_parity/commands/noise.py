"""`keras-parity noise`: measure the float32 noise the built-in tolerances are derived from."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from keras_parity.commands.arguments import user_path
from keras_parity.exitcodes import Exit

HELP = "measure the float32 noise of every built-in cell into models/noise.json (the tolerances' base)"
NEEDS_CHECKOUT = True  # it measures against the checkout's goldens and rewrites models/noise.json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("noise", help=HELP, description=HELP)
    p.add_argument("--out", type=user_path, help="keep the backends' runs here (default: a temporary folder)")
    return p


def run(args, console) -> Exit:
    from keras_parity import golden
    from keras_parity.calibrate.noise import measure
    from keras_parity.registry.noise import NOISE_FILE

    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args.out or Path(tmp), log=console.print)
    golden.write_json(NOISE_FILE, measured)
    console.print(
        f"{len(measured['cells'])} cells measured on {measured['platform']}; written to {NOISE_FILE}", soft_wrap=True
    )
    return Exit.OK

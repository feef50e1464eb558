"""`keras-parity growth`: measure the rounding growth of every built-in layer, which R_JUMP is set above."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from keras_parity.commands.arguments import count, user_path
from keras_parity.exitcodes import Exit

HELP = "measure every built-in layer's rounding growth R, which localize's jump threshold is set above"
NEEDS_CHECKOUT = True  # it measures against the checkout's goldens


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("growth", help=HELP, description=HELP)
    p.add_argument("--out", type=user_path, help="keep the backends' runs here (default: a temporary folder)")
    p.add_argument(
        "--top",
        type=count("a whole number above 0", "one, e.g. 5"),
        default=5,
        help="how many of the largest growths to list (default 5)",
    )
    return p


def run(args, console) -> Exit:
    from keras_parity.calibrate.growth import measure_rounding_growth
    from keras_parity.diagnose.localize import R_JUMP

    with tempfile.TemporaryDirectory() as tmp:
        measured = measure_rounding_growth(args.out or Path(tmp))
    for r in measured[: args.top]:
        line = f"R = {r.rate:.3g}  rel L2 {r.rel_l2:.2e} from {r.inputs_rel_l2:.2e}  {r.name} ({r.class_name})"
        console.print(line, soft_wrap=True, markup=False)
    console.print(f"{len(measured)} layer outputs; largest R {measured[0].rate:.3g}; R_JUMP = {R_JUMP:g}")
    return Exit.OK

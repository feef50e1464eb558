"""Every command's module, in the order `keras-parity --help` lists them, and the parser they make."""

from __future__ import annotations

import argparse

from keras_parity import __version__
from keras_parity.commands import (
    bench,
    drift,
    faults,
    golden,
    growth,
    images,
    localize,
    noise,
    parity,
    report,
    repro,
    sensitivity,
    watch,
    zoo,
)  # fmt: skip

COMMANDS = (
    parity, golden, bench, images, localize, sensitivity, faults, zoo, drift, watch, repro, report, noise, growth,
)  # fmt: skip

EPILOG = (
    "Each action is the nox session of the same name in a checkout (`nox -s parity -- ARGS`\n"
    "runs `keras-parity parity ARGS`); a checkout also has `nox -s tests`, `nox -s lint`\n"
    "and `nox -s lock` for its own development. Your own models: parity --model-file\n"
    "model.keras --inputs inputs.npz; in pytest, the keras_parity fixture."
)


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per module of COMMANDS, each remembering its module."""
    ap = argparse.ArgumentParser(
        prog="keras-parity",
        description="Numerical parity of Keras 3 models across backends.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(command=module)
    return ap

"""The argument groups several commands share: the models to run, the backends and results
folder, and how a backend process runs (image, device, twins, time limit, ISA cap)."""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.paths import RESULTS
from keras_parity.run import machine
from keras_parity.run.machine import ISA_CAPS
from keras_parity.run.settings import Settings
from keras_parity.twins import MODULES as TWINS

VERBOSE = "also print the full per-cell table (always written to parity-table.txt in --out)"
GOLDEN_DIR = "your model's golden folder (default: golden/ beside the model file; ./golden)"


def model_arguments(ap: argparse.ArgumentParser, golden_help: str = GOLDEN_DIR) -> None:
    """--model and the options of your own models (commands/selection.py reads them), for every
    command that runs models: parity, golden, bench, localize, repro, drift."""
    ap.add_argument(
        "--model",
        action="append",
        help="run only this model (repeatable): a built-in one, or your builder as package.module:function",
    )
    ap.add_argument(
        "--model-file", action="append", type=user_path, help="your saved Keras 3 model (.keras), repeatable"
    )
    ap.add_argument("--inputs", type=user_path, help="your model's inputs (.npz, one array per input name)")
    ap.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="run --inputs that hold NaN or Inf (refused by default: their outputs cannot be judged)",
    )
    ap.add_argument("--custom-objects", metavar="MODULE", help="a module that registers your custom layers")
    ap.add_argument("--golden-dir", type=user_path, help=golden_help)
    ap.add_argument("--rel-l2", type=float, help="your model's tolerance in relative L2 (default 1e-4)")


def user_path(text: str) -> Path:
    """A path the user gave, made absolute against the folder the command was started from:
    the backend processes start elsewhere (in the package's folder)."""
    return Path(text).absolute()


def count(what: str, fix: str):
    """An option's type for a whole number above 0; anything else is argparse's one error line,
    "'TEXT' is not WHAT; give FIX" (growth --top, bench --runs)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}; give {fix}")
        return n

    return parse


def common(ap: argparse.ArgumentParser) -> None:
    """--backend, the model arguments and --out."""
    ap.add_argument("--backend", action="append", help="run only this backend (repeatable)")
    model_arguments(ap)
    ap.add_argument("--out", type=user_path, default=user_path(str(RESULTS)), help="where results are written")


def run_arguments(ap: argparse.ArgumentParser) -> None:
    """How each backend process runs, for parity, golden and bench (run_settings reads the time
    limit and the ISA cap)."""
    ap.add_argument("--docker", action="store_true", help="run each backend in its image (`nox -s images`)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the CUDA environments or images")
    ap.add_argument(
        "--twins",
        nargs="*",
        choices=sorted(TWINS),
        help="also run the native twins (all, or those named): plain PyTorch, plain JAX, tf_keras",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop a backend process running longer than this, an ERROR naming its model (default 3600)",
    )
    ap.add_argument(
        "--isa-cap",
        choices=sorted(ISA_CAPS),
        help="cap every backend's CPU kernels at this instruction set (x86; snapshots keyed by the cap)",
    )


def run_settings(args) -> Settings:
    """--time-limit and --isa-cap, checked, for the plan (the launcher hands them to each backend
    process); KERAS_PARITY_TIME_LIMIT, read when no --time-limit is given, is checked here too."""
    limit, cap = getattr(args, "time_limit", None), getattr(args, "isa_cap", None)
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise UsageError(f"--time-limit {limit:g} is not a duration; give seconds above 0, e.g. 1800")
    if cap and not machine.is_x86():
        raise UsageError(f"--isa-cap {cap} caps x86 kernels; this machine is {platform.machine()}")
    chosen = Settings(limit, cap or None)
    chosen.seconds()  # a KERAS_PARITY_TIME_LIMIT that is not a duration: a UsageError now, not mid-run
    return chosen

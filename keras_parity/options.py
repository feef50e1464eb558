"""The command line of `keras-parity` (the nox sessions' actions), declared once: every action's
options with their help. keras_parity/cli.py parses with it and runs the action."""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_parity import __version__
from keras_parity.drift import cli as drift_cli
from keras_parity.paths import RESULTS
from keras_parity.pins import pinned_version
from keras_parity.run.machine import ISA_CAPS
from keras_parity.twins import MODULES as TWINS

VERBOSE = "also print the full per-cell table (always written to parity-table.txt in --out)"
# The published TensorFlow CPU image of the pinned release: what the images' sizes are held against.
UPSTREAM_TF = f"tensorflow/tensorflow:{pinned_version('tensorflow-cpu')}"


def model_arguments(ap: argparse.ArgumentParser, golden_help: str) -> None:
    """--model and the options of your own models (cli._models reads them), for every action
    that runs models: parity, golden, bench, drift."""
    ap.add_argument(
        "--model",
        action="append",
        help="run only this model (repeatable): a built-in one, or your builder as package.module:function",
    )
    ap.add_argument("--model-file", action="append", type=Path, help="your saved Keras 3 model (.keras), repeatable")
    ap.add_argument("--inputs", type=Path, help="your model's inputs (.npz, one array per input name)")
    ap.add_argument("--custom-objects", metavar="MODULE", help="a module that registers your custom layers")
    ap.add_argument("--golden-dir", type=Path, help=golden_help)
    ap.add_argument("--rel-l2", type=float, help="your model's tolerance in relative L2 (default 1e-4)")


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--backend", action="append", help="run only this backend (repeatable)")
    model_arguments(ap, "your model's golden folder (default: golden/ beside the model file; ./golden)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where results are written")


def parser(commands: dict) -> argparse.ArgumentParser:
    """The command line of every action, declared in one place; `commands` maps each action to
    the function that runs it (keras_parity/cli.py). Long because it is a declaration: one
    add_argument per option, nothing else."""
    ap = argparse.ArgumentParser(
        prog="keras-parity",
        description="Numerical parity of Keras 3 models across backends.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Each action is the nox session of the same name in a checkout (`nox -s parity -- ARGS`\n"
            "runs `keras-parity parity ARGS`); a checkout also has `nox -s tests`, `nox -s lint`\n"
            "and `nox -s lock` for its own development. Your own models: parity --model-file\n"
            "model.keras --inputs inputs.npz; in pytest, the keras_parity fixture."
        ),
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (
        ("parity", commands["parity"], "run every model on every backend and compare with the goldens"),
        ("golden", commands["golden"], "regenerate the float64 references and the backend snapshots"),
        ("bench", commands["bench"], "time the parity run against a naive sequential, eager baseline"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        p.add_argument("--docker", action="store_true", help="run each backend in its image (`nox -s images`)")
        p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the CUDA environments or images")
        p.add_argument(
            "--twins",
            nargs="*",
            choices=sorted(TWINS),
            help="also run the native twins (all, or those named): plain PyTorch, plain JAX, tf_keras",
        )
        p.add_argument(
            "--time-limit",
            type=float,
            metavar="SECONDS",
            help="stop a backend process running longer than this, an ERROR naming its model (default 3600)",
        )
        p.add_argument(
            "--isa-cap",
            choices=sorted(ISA_CAPS),
            help="cap every backend's CPU kernels at this instruction set (x86; snapshots keyed by the cap)",
        )
        p.set_defaults(
            fn=fn, float64=False, determinism=False, policy=None, training=True, tf32=False, lstm_no_cudnn=False,
            strict=False, strict_bits=False, with_=None, verbose=False,
        )  # fmt: skip
        if name == "golden":
            p.add_argument(
                "--snapshots-only",
                action="store_true",
                help="record this platform's snapshots only; the float64 references and graphs stay as they are",
            )
        if name == "parity":
            p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
            p.add_argument(
                "--no-training",
                dest="training",
                action="store_false",
                help="forward cases only: no gradients or optimizer steps",
            )
            p.add_argument("--float64", action="store_true", help="classify every cell rounding or semantic")
            p.add_argument(
                "--with",
                dest="with_",
                action="append",
                metavar="NAME==VERSION",
                help="rehearse an upgrade: also run with these versions (repeatable), beside the pinned run",
            )
            p.add_argument(
                "--policy",
                action="append",
                choices=("mixed_float16", "mixed_bfloat16", "float64"),
                help="also run every cell under this dtype policy (repeatable)",
            )
            p.add_argument(
                "--tf32",
                action="store_true",
                help="GPU: also run with TF32 on and report its effect per cell (skipped without a GPU)",
            )
            p.add_argument(
                "--lstm-no-cudnn",
                action="store_true",
                help="GPU: also run the LSTM off cuDNN, on the generic kernel (skipped without a GPU)",
            )
            p.add_argument(
                "--determinism",
                action="store_true",
                help="run every cell twice in-process and once more in a fresh one",
            )
            p.add_argument(
                "--strict",
                action="store_true",
                help="fail a case whose outputs carry no information (constant, saturated), not only note it",
            )
            p.add_argument(
                "--strict-bits",
                action="store_true",
                help="fail a cell whose bits moved against this platform's own snapshot (pinned CI, not upgrades)",
            )
    p = sub.add_parser("images", help="build the backend images (cpu; --cuda adds the CUDA variants)")
    p.add_argument("--backend", action="append", help="build only this backend's image (repeatable)")
    p.add_argument("--cuda", action="store_true", help="also build the CUDA variants")
    p.add_argument("--base-image", help="base image to build on, e.g. an offline one (docker/engine.sh)")
    p.add_argument("--compare", default=UPSTREAM_TF, help="an image in the engine to compare sizes with")
    p.add_argument("--prune", action="store_true", help="remove images and cache volumes no current lock builds")
    p.set_defaults(fn=commands["images"])
    p = sub.add_parser("localize", help="every layer's error against float64, and the first layer where it jumps")
    model_arguments(p, "your model's golden folder (default: golden/ beside the model file; ./golden)")
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.add_argument("--case", action="append", help="only this case (repeatable)")
    p.add_argument("--out", type=Path, default=RESULTS / "localize", help="where tables' plots go")
    p.add_argument("--docker", action="store_true", help="run each backend in its image")
    p.set_defaults(fn=commands["localize"])
    p = sub.add_parser("zoo", help="every keras.applications architecture and example model against float64")
    p.add_argument("--model", action="append", help="only this model of the zoo (repeatable)")
    p.add_argument("--backend", action="append", choices=("tensorflow", "jax", "torch"), help="only this backend")
    p.add_argument("--ci", action="store_true", help="the cheap slice CI runs: the three example models")
    p.add_argument("--float64", action="store_true", help="also run every model under float64: does Keras honour it?")
    p.add_argument("--docker", action="store_true", help="run each backend in its image")
    p.add_argument("--out", type=Path, default=RESULTS, help="where results are written (under zoo/)")
    p.set_defaults(fn=commands["zoo"])
    drift_cli.add_parser(sub)
    p = sub.add_parser("repro", help="one cell as a standalone script, its weights, inputs and float64 outputs")
    p.add_argument("cell", nargs="?", help="MODEL/CASE, e.g. lstm/lstm (a model given with --model-file: CASE or none)")
    _common(p)
    p.set_defaults(fn=commands["repro"], out=RESULTS / "repro")
    p = sub.add_parser("report", help="merge result directories of several machines into one report")
    p.add_argument("dirs", nargs="+", type=Path, help="directories written by `parity --out`")
    p.add_argument("--out", type=Path, default=RESULTS / "merged", help="where the merged report goes")
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    p.set_defaults(fn=commands["report"])
    return ap

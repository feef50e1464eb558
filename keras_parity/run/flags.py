"""What a backend process is asked to compute, declared once: the launcher (launch.py) writes
these flags on the runner's command line and the runner (runner.py) parses them back."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

DTYPES = ("float32", "float64", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class RunFlags:
    device: str = "cpu"  # the device asked for: cpu, cuda
    dtype: str = "float32"  # floatx (float32, float64) or a mixed dtype policy
    training: bool = True  # the training-path cases too
    layers: bool = False  # also every layer's output (<backend>.layers.npz), for localization
    configs: bool = False  # each model's Keras config and weight list, for the goldens
    twice: bool = False  # every cell a second time in the same process, recording its bit distance
    repeat: bool = False  # time a second (steady) call, for the benchmark
    naive: bool = False  # the benchmark's baseline: eager call only, no caches
    predict_only: bool = False  # the compiled path alone (the zoo: its question is the reference)
    tf32: bool = False  # TF32 on (GPUs; the default keeps it off)
    lstm_cudnn: bool = True  # LSTM layers may take cuDNN (False: the generic kernel)
    watch: bool = False  # the watch list's reproducers too (keras_parity/watch), after the models
    plants: str = ""  # a JSON file of planted changes to run after the models (keras_parity/run/plant.py)
    patch: str = ""  # a Python file run after Keras is imported, before the models (`parity --patch`)


# Each field's flag and help; a bool that defaults to True is switched off by its flag.
_FLAGS = {
    "device": ("--device", "the device asked for"),
    "dtype": ("--dtype", "floatx (float32, float64) or a mixed dtype policy for the run"),
    "training": ("--no-training", "skip the training-path cases"),
    "layers": ("--layers", "also write every layer's output (<backend>.layers.npz)"),
    "configs": ("--configs", "write each model's Keras config (for goldens)"),
    "twice": ("--twice", "run every cell a second time and record its bit distance"),
    "repeat": ("--repeat", "time a second (steady) call"),
    "naive": ("--naive", "benchmark baseline: eager call only"),
    "predict_only": ("--predict-only", "inference cases on the predict path only"),
    "tf32": ("--tf32", "TF32 on (GPUs; the default keeps it off)"),
    "lstm_cudnn": ("--lstm-no-cudnn", "LSTM layers on the generic kernel, never cuDNN"),
    "watch": ("--watch", "also run the watch list's reproducers (keras_parity/watch)"),
    "plants": ("--plants", "a JSON file of planted changes to run after the models (run/plant.py)"),
    "patch": ("--patch", "a Python file run after Keras is imported, before the models"),
}
_CHOICES = {"device": ("cpu", "cuda"), "dtype": DTYPES}


def to_argv(flags: RunFlags) -> list[str]:
    """The runner's command line for `flags` (defaults left out, --device always given)."""
    argv: list[str] = []
    for f in fields(RunFlags):
        value, (flag, _) = getattr(flags, f.name), _FLAGS[f.name]
        if isinstance(f.default, bool):
            argv += [flag] if value != f.default else []
        elif value != f.default or f.name == "device":
            argv += [flag, str(value)]
    return argv


def add_arguments(ap: argparse.ArgumentParser) -> None:
    for f in fields(RunFlags):
        flag, help_ = _FLAGS[f.name]
        if isinstance(f.default, bool):
            ap.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true", help=help_)
        else:
            ap.add_argument(flag, dest=f.name, default=f.default, choices=_CHOICES.get(f.name), help=help_)


def from_namespace(ns: argparse.Namespace) -> RunFlags:
    return RunFlags(**{f.name: getattr(ns, f.name) for f in fields(RunFlags)})

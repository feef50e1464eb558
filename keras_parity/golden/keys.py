"""The key grammar of the arrays in golden files, runs and feeds: build keys and take them apart."""

from __future__ import annotations

# A run's outputs: '<model>/<case>/<path>/<output>'; a snapshot drops the model, a reference
# also the path ('<case>/<output>'). Training outputs put a group first in <output>
# ('grad/dense/kernel'); an array kept as fixed positions ends in '@sample'. A runner's
# feeds: '<model>/weights/<weight path>' and '<model>/inputs/<case>/<input name>'.
SEP = "/"
SAMPLE = "@sample"


def key(*parts: str) -> str:
    """The key of the given parts: key('m', 'c', 'predict', 'output') == 'm/c/predict/output'."""
    return SEP.join(parts)


def part(arrays: dict, *parts: str) -> dict:
    """The arrays under `parts`, keyed by the rest: part(run, 'm', 'c', 'predict') maps
    'output' to the array at 'm/c/predict/output'."""
    if not parts:
        return dict(arrays)
    prefix = key(*parts) + SEP
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def children(arrays: dict, *parts: str) -> list[str]:
    """The distinct next parts under `parts`, sorted: children(run, 'm', 'c') == ['eager', 'predict']."""
    return sorted({k.split(SEP, 1)[0] for k in part(arrays, *parts)})


def output(i: int) -> str:
    """The key of a model's i-th output: 'output', then 'output:1', ... (keras.tree.flatten order)."""
    return "output" if i == 0 else f"output:{i}"


def head(k: str) -> str:
    """The first part of a key: a training output's group ('grad/dense/kernel' -> 'grad')."""
    return k.split(SEP, 1)[0]


def sampled(k: str) -> str:
    """The key of an array kept as fixed positions."""
    return k + SAMPLE

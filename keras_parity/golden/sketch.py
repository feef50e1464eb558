"""Layer sketches: every layer's output of a forward case, kept small enough to be a golden.

A change deep in a network reaches its outputs diluted (ResNet50: one convolution scaled by
1 + 1.4e-5 moves the logits by 2.5e-6), so each layer's output is judged too, against its own
float32 noise. Full outputs would be hundreds of MB; a count sketch keeps SIZE numbers per layer:
each value added, with a random sign, into one of SIZE buckets (positions and signs seeded by
the array's shape, the same on every side). The sketch is linear, so the sketch of the error is
the error of the sketch, and its L2 norm is the error's within a few percent: a scale change
of a layer reads exactly, a change at a few positions (a padding's border) is not sampled away.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

SIZE = 256


@functools.lru_cache(maxsize=32)
def _hash(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    n = int(np.prod(shape))
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    return rng.integers(0, SIZE, n, dtype=np.int32), rng.choice(np.array([-1.0, 1.0]), n)


def sketch(a: np.ndarray) -> np.ndarray:
    """SIZE float64 numbers standing for `a` (any shape, any float dtype)."""
    buckets, signs = _hash(tuple(a.shape))
    return np.bincount(buckets, weights=signs * np.asarray(a, dtype=np.float64).reshape(-1), minlength=SIZE)


def sketches(layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name -> sketch, for the float outputs among `layers` (an integer output is skipped)."""
    return {k: sketch(v) for k, v in layers.items() if np.asarray(v).dtype.kind == "f"}

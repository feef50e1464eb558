"""Weights and inputs drawn with NumPy from a fixed seed, never from a backend's RNG.

Backends ship different initializers and random generators, so a model "initialized the
same way" starts from different numbers on each one. Everything a model sees here comes
from numpy.random.Generator(PCG64) keyed by (model seed, builder, name), cast to float32.
"""

from __future__ import annotations

import fnmatch
import hashlib
import zlib

import numpy as np

from keras_parity.spec import Inp

# Scale rules by the last component of a variable path. Kernels get a fan-in scaled normal
# (He for convolutions, which feed ReLUs; LeCun for Dense) so activations stay O(1);
# BatchNormalization statistics sit near identity but not at it, so a mix-up shows.
_UNIFORM = {
    "bias": (-0.1, 0.1),
    "gamma": (0.8, 1.2),
    "beta": (-0.1, 0.1),
    "moving_mean": (-0.1, 0.1),
    "moving_variance": (0.8, 1.2),
    "scale": (0.5, 1.5),
}


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def draw_weight(path: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    leaf = path.rsplit("/", 1)[-1]
    if leaf in _UNIFORM:
        low, high = _UNIFORM[leaf]
        return np.float32(low) + rng.random(size=shape, dtype=np.float32) * np.float32(high - low)
    if leaf in ("kernel", "recurrent_kernel"):
        fan_in = int(np.prod(shape[:-1]))
        gain = 2.0 if len(shape) > 2 else 1.0
        return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(np.sqrt(gain / fan_in))
    raise ValueError(
        f"no weight rule for variable '{path}'; add one for '{leaf}' in keras_parity/weights.py"
    )


def generate_weights(
    specs: list[tuple[str, tuple[int, ...]]], seed: int, builder: str, scale: dict[str, float] | None = None
) -> list[np.ndarray]:
    """One float32 array per (path, shape), in order, drawn from (seed, builder, path).

    scale: {fnmatch pattern: factor} for model-specific damping, e.g. residual branches.
    """
    out = []
    for path, shape in specs:
        w = draw_weight(path, tuple(shape), _rng(seed, builder, path)).astype(np.float32, copy=False)
        for pattern, factor in (scale or {}).items():
            if fnmatch.fnmatchcase(path, pattern):
                w = w * np.float32(factor)
        out.append(w)
    return out


def generate_inputs(inputs: dict[str, Inp], seed: int, builder: str) -> dict[str, np.ndarray]:
    out = {}
    for name, inp in inputs.items():
        if inp.fill is not None:
            out[name] = np.full(inp.shape, inp.fill, dtype=np.float32)
        else:
            rng = _rng(seed, builder, "input", name)
            out[name] = rng.uniform(inp.low, inp.high, size=inp.shape).astype(np.float32)
    return out


def checksum(arrays) -> str:
    """sha256 over names, shapes, dtypes and bytes; arrays is a list or a dict."""
    h = hashlib.sha256()
    items = sorted(arrays.items()) if isinstance(arrays, dict) else enumerate(arrays)
    for key, a in items:
        a = np.ascontiguousarray(a)
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]

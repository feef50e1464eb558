"""Weights and inputs drawn with NumPy from a fixed seed, never from a backend's RNG.

Backends ship different initializers and random generators, so a model "initialized the
same way" starts from different numbers on each one. Everything a model sees here comes
from numpy.random.Generator(PCG64) keyed by (model seed, builder, name), cast to float32,
through arithmetic that gives the same bits on every machine (no C-library function).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from keras_parity.registry.spec import Inp

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
    # keras.layers.Normalization's statistics: a variance must be positive
    "mean": (-0.1, 0.1),
    "variance": (0.8, 1.2),
    "count": (1.0, 1.0),
}


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance, bell-shaped float32 values from uniforms alone: the sum of four, centred
    and scaled (Irwin-Hall, bounded at 2*sqrt(3) as Keras's truncated initializers are bounded).
    NumPy's float32 normals take their tail from the C library's log1pf, which glibc 2.41
    (Debian 13) made correctly rounded: 3 values in a million move by an ULP, and ResNet50's
    weights no longer matched their goldens there. Uniform draws, sums and products are exact
    IEEE arithmetic: the same bits on every machine and C library."""
    u = rng.random(size=(4, *shape))
    return ((u[0] + u[1] + u[2] + u[3] - 2.0) * np.sqrt(3.0)).astype(np.float32)


def draw_weight(
    path: str, shape: tuple[int, ...], rng: np.random.Generator, generic: bool = False, fan_in: int | None = None
) -> np.ndarray:
    """One variable's values; `fan_in` where the shape does not tell it (depthwise_fan_ins)."""
    leaf = path.rsplit("/", 1)[-1]
    if leaf in _UNIFORM:
        low, high = _UNIFORM[leaf]
        return np.float32(low) + rng.random(size=shape, dtype=np.float32) * np.float32(high - low)
    if leaf in ("kernel", "recurrent_kernel"):
        fan_in = fan_in or int(np.prod(shape[:-1]))
        gain = 2.0 if len(shape) > 2 else 1.0
        return _normal(rng, shape) * np.float32(np.sqrt(gain / fan_in))
    if generic:  # a user's builder: any other variable, by rank
        if len(shape) >= 2:
            fan_in = fan_in or int(np.prod(shape[:-1]))
            return _normal(rng, shape) * np.float32(np.sqrt(1.0 / fan_in))
        return np.float32(-0.1) + rng.random(size=shape, dtype=np.float32) * np.float32(0.2)
    raise ValueError(f"no weight rule for variable '{path}'; add one for '{leaf}' in keras_parity/run/weights.py")


def generate_weights(
    specs: list[tuple[str, tuple[int, ...]]],
    seed: int,
    builder: str,
    scale: dict[str, float] | None = None,
    generic: bool = False,
    fan_in: dict[str, int] | None = None,
) -> list[np.ndarray]:
    """One float32 array per (path, shape), in order, drawn from (seed, builder, path).

    scale: {fnmatch pattern: factor} for model-specific damping, e.g. residual branches.
    fan_in: {path: fan-in} for kernels whose shape misleads (depthwise_fan_ins).
    """
    out, fan_in = [], fan_in or {}
    for path, shape in specs:
        rng = _rng(seed, builder, path)
        w = draw_weight(path, tuple(shape), rng, generic, fan_in.get(path)).astype(np.float32, copy=False)
        for pattern, factor in (scale or {}).items():
            if fnmatch.fnmatchcase(path, pattern):
                w = w * np.float32(factor)
        out.append(w)
    return out


def cached_weights(
    specs: list[tuple[str, tuple[int, ...]]],
    seed: int,
    builder: str,
    scale: dict[str, float] | None,
    cache_dir: Path | None,
    min_size: int = 1_000_000,
    fan_in: dict[str, int] | None = None,
) -> list[np.ndarray]:
    """generate_weights, kept on disk for big models: drawing ResNet50's 25M values costs 0.5 s
    in every backend process. The key covers everything the values derive from, this file
    included, and the caller checksums what it gets, so a stale cache cannot go unnoticed."""
    if cache_dir is None or sum(int(np.prod(s)) for _, s in specs) < min_size:
        return generate_weights(specs, seed, builder, scale, fan_in=fan_in)
    key = hashlib.sha256(
        repr((specs, seed, builder, sorted((scale or {}).items()), sorted((fan_in or {}).items()))).encode()
    )
    key.update(Path(__file__).read_bytes())
    path = cache_dir / f"{builder}-{key.hexdigest()[:16]}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return [z[f"w{i}"] for i in range(len(specs))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache entry is rebuilt below
    weights = generate_weights(specs, seed, builder, scale, fan_in=fan_in)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **{f"w{i}": w for i, w in enumerate(weights)})
    os.replace(tmp, path)  # concurrent writers of the same key write the same bytes
    return weights


def generate_inputs(inputs: dict[str, Inp], seed: int, builder: str) -> dict[str, np.ndarray]:
    out = {}
    for name, inp in inputs.items():
        if inp.fill is not None:
            out[name] = np.full(inp.shape, inp.fill, dtype=np.float32)
        else:
            rng = _rng(seed, builder, "input", name)
            out[name] = rng.uniform(inp.low, inp.high, size=inp.shape).astype(np.float32)
    return out


def depthwise_fan_ins(model) -> dict[str, int]:
    """{kernel path: fan-in} of the model's depthwise kernels, (k, k, channels, multiplier) in
    shape but k * k inputs per output: drawn by shape, a MobileNet's or EfficientNet's signal
    shrinks by sqrt(channels) per block until every input gives the same output."""
    import keras

    from keras_parity.run.varpaths import path_of

    out, named = {}, path_of(model)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
            kernel = layer.kernel
        elif isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
            kernel = layer.depthwise_kernel
        else:
            continue
        out[named[id(kernel)]] = int(np.prod(kernel.shape[:-2]))
    return out


def seeded_case(spec, case, record) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A built-in case's weights, by variable path, and inputs: the numbers every backend's
    runner draws (cached_weights, generate_inputs), for the float64 reference to use.
    `record`: a builder's record (its 'weights', [(path, shape), ...] in model order, and
    'fan_in'), as the runner and the goldens' graph keep it."""
    specs = [(p, tuple(s)) for p, s in record["weights"]]
    drawn = generate_weights(specs, spec.seed, case.builder, spec.weight_scale, fan_in=record.get("fan_in"))
    return dict(zip((p for p, _ in specs), drawn)), generate_inputs(case.inputs, spec.seed, case.builder)


def config_hash(config: dict) -> str:
    """Hash of a model's Keras config: a changed definition shows as a note in the report."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def checksum(arrays) -> str:
    """sha256 over names, shapes, dtypes and bytes; arrays is a list or a dict."""
    h = hashlib.sha256()
    items = sorted(arrays.items()) if isinstance(arrays, dict) else enumerate(arrays)
    for key, a in items:
        a = np.ascontiguousarray(a)
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]

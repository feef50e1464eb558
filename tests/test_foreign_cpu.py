"""The judge's numbers are the same bits on every x86-64 CPU: computed without BLAS
(judge/numerics.py, sum_of_squares), they do not follow the BLAS kernel OpenBLAS picks for
the CPU (an AMD EPYC gets the Haswell ones, an Intel Xeon the SkylakeX ones), nor NumPy's
SIMD extensions. np.linalg.norm of the same arrays may differ; it did, by a bit or two, for
the report master's numbers (docs/measurements.md). `nox -s tests -- --foreign-cpu` runs
every fast test under such a CPU's settings."""

import ast
import json
import os
import platform
import subprocess
import sys

import pytest
from helpers import ROOT

from keras_parity.run import machine

# Arrays of many sizes, each with a float32 copy: the judge's numbers of each, as hex floats,
# and np.linalg.norm's beside them (BLAS: ddot), to see whether the kernels differed at all.
SCRIPT = r"""
import hashlib
import json
import numpy as np
from keras_parity.golden.sketch import sketch
from keras_parity.judge.compare import value_metrics
from keras_parity.judge.layers import judge_layers
from keras_parity.judge.numerics import array_error, l2_norm, rel_l2, rms
from keras_parity.registry.spec import Tol

rng = np.random.default_rng(20260)
judge, blas = {}, {}
for n in (7, 100, 1000, 4099, 25_000, 100_000, 262_147):
    ref = rng.standard_normal(n) * rng.uniform(0.5, 2.0, n)
    out = (ref * (1 + 3e-7 * rng.standard_normal(n))).astype(np.float32)
    diff = out.astype(np.float64) - ref
    layers = judge_layers({"a": out}, {"a": ref}, {"a": Tol(0.0, 0.0, 0.0, "zero")})
    judge[n] = [
        rel_l2(out, ref), l2_norm(ref), rms(ref), *array_error(out, ref, rms(ref)),
        value_metrics(out, ref).rel_l2, layers.message,
        hashlib.sha256(sketch(ref).tobytes() + sketch(diff).tobytes()).hexdigest(),
    ]
    blas[n] = [float(np.linalg.norm(ref)), float(np.linalg.norm(diff)) / float(np.linalg.norm(ref))]
hexed = lambda xs: [x.hex() if isinstance(x, float) else x for x in xs]
print(json.dumps({"judge": {n: hexed(v) for n, v in judge.items()}, "blas": {n: hexed(v) for n, v in blas.items()}}))
"""


def _numbers(coretype: str, npy_disable: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env |= {"OPENBLAS_CORETYPE": coretype, "PYTHONPATH": str(ROOT)}
    if npy_disable:
        env["NPY_DISABLE_CPU_FEATURES"] = npy_disable
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _settings() -> dict[str, tuple[str, str]]:
    """Kernel choices this CPU can run: OpenBLAS's Haswell (AVX2) kernels with NumPy's AVX-512
    loops off, its Prescott (SSE3) ones with NumPy's AVX2 loops off too, and with AVX-512 its
    SkylakeX ones (a forced kernel the CPU lacks would crash, not fall back)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    wide = [t for t in __cpu_dispatch__ if t.startswith("AVX512") or t == "X86_V4"]
    settings = {"Haswell": ("Haswell", " ".join(wide)), "Prescott": ("Prescott", " ".join(["X86_V3", *wide]))}
    if "avx512f" in machine.cpu_identity().get("flags", []):
        settings["SkylakeX"] = ("SkylakeX", "")
    return settings


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="OpenBLAS's x86-64 kernels")
def test_the_judges_numbers_do_not_depend_on_the_blas_kernel_or_the_simd_extensions():
    got = {name: _numbers(*how) for name, how in _settings().items()}
    first, *others = got
    for name in others:
        blas, theirs = got[first]["blas"], got[name]["blas"]
        moved = [n for n in blas if theirs[n] != blas[n]]
        print(f"np.linalg.norm, {name} against {first}: {len(moved)} of {len(blas)} arrays differ {moved}")
        assert got[name]["judge"] == got[first]["judge"], f"the judge's numbers differ between {first} and {name}"


# The judge's modules: what a test compares byte for byte is computed here.
JUDGED = [*sorted((ROOT / "keras_parity" / "judge").glob("*.py")), ROOT / "keras_parity" / "golden" / "sketch.py"]
JUDGED += sorted((ROOT / "keras_parity" / "report").glob("*.py"))
BLAS_CALLS = {"linalg", "dot", "vdot", "inner", "outer", "matmul", "tensordot", "einsum", "kron", "multi_dot"}


@pytest.mark.parametrize("path", JUDGED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_judge_calls_no_blas(path):
    """Also where the kernels happen to agree: no np.linalg, dot, matmul, einsum or @ (a sum of
    squares goes through numerics.sum_of_squares)."""
    tree = ast.parse(path.read_text())
    calls = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in BLAS_CALLS]
    calls += ["@" for n in ast.walk(tree) if isinstance(n, ast.BinOp | ast.AugAssign) and isinstance(n.op, ast.MatMult)]
    assert not calls, f"{path.name} calls {calls}: use keras_parity.judge.numerics.sum_of_squares"

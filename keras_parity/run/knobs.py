"""Determinism and precision settings of each backend, applied once per process and recorded.

Correctness runs keep float32 matmuls in float32: TF32 off on GPUs (as keras's own
conftest does), JAX matmul precision 'highest' (its default on some devices is bf16 passes);
the GPU variant run (keras_parity/diagnose/gpu.py) turns TF32 on to measure what it costs.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_parity.run import envinfo

# One compute thread per backend process: a reduction split across threads can round
# differently with the core count, and the backends run side by side on the cores instead.
THREADS = 1


def before_import(backend: str, cache_dir: Path | None, dtype: str = "float32") -> dict:
    """Environment that must be set before the backend library is imported."""
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    if backend == "jax" and dtype == "float64":
        env["JAX_ENABLE_X64"] = "1"  # without it JAX silently computes float64 models in float32
    env.update(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(THREADS)))
    if backend == "tensorflow":
        env["TF_DETERMINISTIC_OPS"] = "1"
    if backend == "jax":
        flags = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={THREADS}"
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if backend == "jax" and cache_dir is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    cap = envinfo.isa_cap()
    if cap:
        env.update(isa_cap_env(cap, env.get("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))))
    os.environ.update(env)
    return env


# Each library's own switch for the widest instruction set its kernels may use: oneDNN
# (TensorFlow's and torch's convolutions and matmuls), XLA's CPU code generation (JAX),
# ATen's vectorised kernels (torch), and MKL's conditional numerical reproducibility
# (torch's BLAS on x86), which also fixes MKL's code path on CPUs of other vendors.
_CAP_NAMES = {
    "avx2": {"onednn": "AVX2", "xla": "AVX2", "aten": "avx2", "mkl": "AVX2"},
    "avx512_core": {"onednn": "AVX512_CORE", "xla": "AVX512", "aten": "avx512", "mkl": "AVX512"},
}


def isa_cap_env(cap: str, xla_flags: str = "") -> dict:
    """The environment that caps every backend's kernels at `cap` (see machine.ISA_CAPS)."""
    names = _CAP_NAMES[cap]
    return {
        "ONEDNN_MAX_CPU_ISA": names["onednn"],
        "DNNL_MAX_CPU_ISA": names["onednn"],
        "ATEN_CPU_CAPABILITY": names["aten"],
        "MKL_CBWR": f"{names['mkl']},STRICT",
        "MKL_ENABLE_INSTRUCTIONS": names["mkl"],
        "XLA_FLAGS": f"{xla_flags} --xla_cpu_max_isa={names['xla']}".strip(),
        envinfo.ISA_CAP_ENV: cap,
    }


def after_import(backend: str, tf32: bool = False, threads: bool = True) -> dict:
    """Set the library knobs; return what was set, for the run's metadata. tf32: TF32 on for
    matmuls and convolutions (NVIDIA GPUs from Ampere on), for the GPU variant run. threads:
    also pin the thread pools, which the libraries allow only before their first op (the
    pytest fixture runs inside a user's process, after it)."""
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework.config import is_op_determinism_enabled

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(THREADS)
        tf.config.experimental.enable_op_determinism()
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
        return {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "op_determinism": is_op_determinism_enabled(),
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
        }
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
        # Cache every compiled program, not only slow ones: the eager (op-by-op) cells compile
        # hundreds of small programs, slower afresh than the call itself (docs/measurements.md).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        return {
            "default_matmul_precision": jax.config.jax_default_matmul_precision,
            "enable_x64": bool(jax.config.jax_enable_x64),
            "persistent_compilation_cache": bool(jax.config.jax_compilation_cache_dir),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
    if backend == "torch":
        import torch

        if threads:
            torch.set_num_threads(THREADS)
            torch.set_num_interop_threads(THREADS)
        torch.use_deterministic_algorithms(True)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = False
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        return {
            "num_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    raise ValueError(f"unknown backend '{backend}'")


# What after_import(threads=False) changes in JAX's global config, by its config name.
_JAX_KNOBS = (
    "jax_default_matmul_precision",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


def current(backend: str) -> dict:
    """The process-wide settings after_import(backend, threads=False) changes, as they are
    now: restore() puts them back (the pytest fixture runs in a user's process, whose other
    tests must not inherit deterministic kernels or a matmul precision)."""
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework.config import is_op_determinism_enabled

        return {
            "op_determinism": is_op_determinism_enabled(),
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
        }
    if backend == "jax":
        import jax

        return {name: getattr(jax.config, name) for name in _JAX_KNOBS}
    if backend == "torch":
        import torch

        return {
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    raise ValueError(f"unknown backend '{backend}'")


def restore(backend: str, saved: dict) -> None:
    """Put back the settings current() returned."""
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config

        (config.enable_op_determinism if saved["op_determinism"] else config.disable_op_determinism)()
        tf.config.experimental.enable_tensor_float_32_execution(saved["tensor_float_32"])
    elif backend == "jax":
        import jax

        for name, value in saved.items():
            jax.config.update(name, value)
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(saved["deterministic_algorithms"], warn_only=saved["warn_only"])
        torch.backends.cuda.matmul.allow_tf32 = saved["cuda_matmul_allow_tf32"]
        torch.backends.cudnn.allow_tf32 = saved["cudnn_allow_tf32"]
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
        # Last: allow_tf32 above sets the precision too ('high' or 'highest'), which may not be what it was.
        torch.set_float32_matmul_precision(saved["float32_matmul_precision"])
    else:
        raise ValueError(f"unknown backend '{backend}'")


def device_info(backend: str) -> tuple[str, dict | None]:
    """('gpu', facts) when the backend computes on a GPU, else ('cpu', None). The facts are
    what its kernels are chosen by: model, compute capability, driver, CUDA and cuDNN."""
    gpu = None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            build = tf.sysconfig.get_build_info()
            gpu = {
                "model": details.get("device_name", "gpu"),
                "compute_capability": ".".join(map(str, details.get("compute_capability", ()))),
                "cuda": build.get("cuda_version"),
                "cudnn": build.get("cudnn_version"),
            }
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform in ("gpu", "cuda"):
            gpu = {"model": dev.device_kind, "compute_capability": getattr(dev, "compute_capability", None)}
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            gpu = {
                "model": torch.cuda.get_device_name(0),
                "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                "cuda": torch.version.cuda,
                "cudnn": str(torch.backends.cudnn.version()),
            }
    if gpu is None:
        return "cpu", None
    gpu["driver"] = _nvidia_driver()
    return "gpu", gpu


def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version (Linux), which ships the PTX JIT compiler."""
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else first.strip()

"""Determinism: every cell run twice in its process and once more in a fresh process.

Bit-identical both times, or the cell is flagged with the knob that makes its backend
deterministic. The run's own knobs (keras_parity/run/knobs.py) set all of these already; a flag
means one of them did not hold (another library version, a GPU kernel without a
deterministic variant, threads set from outside).
"""

from __future__ import annotations

from keras_parity import golden
from keras_parity.diagnose import Diagnosed
from keras_parity.judge.compare import Finding
from keras_parity.judge.numerics import max_ulp

KNOBS = {
    "tensorflow": "TF_DETERMINISTIC_OPS=1 with tf.config.experimental.enable_op_determinism()",
    "jax": "one intra-op thread (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1); "
    "on GPUs --xla_gpu_deterministic_ops=true",
    "torch": "torch.use_deterministic_algorithms(True) with one intra-op thread; "
    "on GPUs CUBLAS_WORKSPACE_CONFIG=:4096:8",
}


def _max_ulp(a: dict, b: dict) -> int | None:
    return max_ulp(a, b) if a.keys() == b.keys() else None


def _fresh_failure(other, model: str) -> str | None:
    """Why the fresh-process run has no output for `model` (None when it has)."""
    if other is None:
        return "it did not run"
    return other.failure(model)


def judge(cells, first: dict, fresh: dict) -> list[Diagnosed]:
    """Label each cell from the same-process repeat (first run's metadata) and the fresh run."""
    found = []
    for c in cells:
        if c.case == "*":
            continue
        run, other = first.get(c.backend), fresh.get(c.backend)
        made = run.models.get(c.model) if run else None
        same = made.twice_max_ulp.get(golden.key(c.case, c.path)) if made else None
        again, failed = None, _fresh_failure(other, c.model)
        if failed is None and run is not None and other is not None:
            again = _max_ulp(run.cell(c.model, c.case, c.path), other.cell(c.model, c.case, c.path))
        if c.backend not in fresh:  # a native twin: run once, its bits are its library's
            why = Finding("determinism", "determinism unchecked: a native twin is not run again", note=True)
            found.append(Diagnosed(c.id, why, determinism="unchecked"))
        elif failed is not None:  # what cannot be shown to repeat is not deterministic
            why = Finding(
                "determinism", f"determinism unproven: the fresh-process run failed ({failed})",
                fix=f"fix that run, and make sure of {KNOBS[c.backend]}",
            )  # fmt: skip
            found.append(Diagnosed(c.id, why, determinism="unchecked"))
        elif same is None or again is None:
            why = Finding("determinism", "determinism unchecked: a run of this cell is missing", note=True)
            found.append(Diagnosed(c.id, why, determinism="unchecked"))
        elif same == 0 and again == 0:
            found.append(Diagnosed(c.id, determinism="deterministic"))
        else:
            moved = f"same process {same} ULP, fresh process {again} ULP"
            why = Finding("determinism", f"nondeterministic: {moved}", fix=f"fix with {KNOBS[c.backend]}")
            found.append(Diagnosed(c.id, why, determinism=moved))
    return found

"""Variants of a run for GPUs: TF32 on, and the LSTM off its cuDNN kernel, each next to the main run.

The main run keeps TF32 off (knobs.py), as Keras's own tests do. `--tf32` runs the forward
cells again with TF32 on and reports, per cell, its error against the TF32-off one, judged
with TF32's precision (spec.PRECISIONS). TF32 exists on NVIDIA GPUs only: on any other device
its cells are reported as skipped, with the reason, and the run goes on.

`--lstm-no-cudnn` runs the models holding an LSTM with use_cudnn=False: Keras's generic cell
loop instead of the backend's own LSTM function, which Keras calls by default and which is
cuDNN's kernel on a GPU (on a CPU, TensorFlow and JAX fall back to the generic loop anyway,
torch to a fused loop of its own). It runs on any device.
"""

from __future__ import annotations

from dataclasses import replace

from keras_parity.judge.compare import CellResult, CellStatus, Finding
from keras_parity.run import service
from keras_parity.run.flags import RunFlags
from keras_parity.run.service import Subset

VARIANTS = {
    "tf32": "TF32 matmuls and convolutions",
    "lstm-no-cudnn": "the LSTM on Keras's generic loop (use_cudnn=False)",
}
LSTM_MODELS = ("lstm",)  # models whose graph holds an LSTM layer


def _models(variant: str, models: list[str]) -> list[str]:
    return [m for m in models if variant != "lstm-no-cudnn" or m in LSTM_MODELS]


def _skipped(variant, backends, models, device) -> list[CellResult]:
    why = (
        f"skipped: {VARIANTS[variant]} exist on NVIDIA GPUs only and this run is on {device}; "
        "rerun with --device cuda on a GPU host"
    )
    return [
        CellResult(m, "*", b, device, "*", CellStatus.SKIPPED, (Finding("variant", why),), variant=variant)
        for m in _models(variant, models)
        for b in backends
    ]


def variant_cells(plan, variant: str, base: list[CellResult], runs: dict, log=print) -> list[CellResult]:
    """Cells of one variant of the plan's run (`runs`), each with a note comparing it with the
    same cell of the main run (`base`), run again through the service under plan.out/<variant>."""
    backends, models = plan.backends, plan.models
    gpu = [b for b in backends if runs[b].device == "gpu"]
    device = next((runs[b].device for b in backends if runs[b].device != "?"), "cpu")
    chosen = _models(variant, models)
    todo = [b for b in backends if not runs[b].error and (b in gpu or variant != "tf32")]
    cells = _skipped(variant, [b for b in backends if b not in gpu], models, device) if variant == "tf32" else []
    if not todo or not chosen:
        return cells
    asked = RunFlags(
        device="cuda" if gpu else "cpu",
        training=False,
        tf32=variant == "tf32",
        lstm_cudnn=variant != "lstm-no-cudnn",
        patch=plan.flags.patch,
    )
    judging = {"precision": "tf32" if variant == "tf32" else "float32", "training": False}
    _, found = service.rerun(plan, Subset(todo, chosen), into=plan.out / variant, flags=asked, judging=judging, log=log)
    main = {(c.model, c.case, c.backend, c.path): c for c in base if c.policy == "float32" and not c.variant}
    for c in found:
        twin = main.get((c.model, c.case, c.backend, c.path))
        beside = [] if twin is None else _beside_main(variant, c, twin, c.backend in gpu)
        cells.append(replace(c, variant=variant, findings=(*c.findings, *beside)))
    return cells


def _beside_main(variant: str, cell: CellResult, main: CellResult, on_gpu: bool) -> list[Finding]:
    """The note setting a variant's cell beside the same cell of the main run (none without numbers)."""
    if not (cell.outputs and main.outputs):
        return []
    now = max(m.rel_l2 for m in cell.outputs.values())
    before = max(m.rel_l2 for m in main.outputs.values())
    ratio = f", {now / before:.3g}x" if before else ""
    main_kernel = ""
    if variant == "lstm-no-cudnn":
        main_kernel = " (cuDNN)" if on_gpu else " (the backend's LSTM function, no cuDNN on a CPU)"
    return [
        Finding(
            "variant",
            f"{VARIANTS[variant]}: rel L2 {now:.2e}; the main run{main_kernel}: {before:.2e}{ratio}",
            note=True,
        )
    ]

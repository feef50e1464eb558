"""Variants for GPUs: TF32 is skipped with the reason where no GPU is, and on a CPU its knobs are
set, recorded and change no bit; the LSTM off cuDNN (Keras's generic loop) runs anywhere."""

import json
from pathlib import Path

import numpy as np
from helpers import cli

from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import run_backends

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent


def test_without_a_gpu_the_variants_are_skipped_not_failed(tmp_path):
    args = ["parity", "--model", "lstm", "--model", "linear", "--no-training", "--tf32", "--lstm-no-cudnn"]
    proc = cli(*args, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    cells = json.loads((tmp_path / "parity.json").read_text())["cells"]
    skipped = [c for c in cells if c["variant"] == "tf32"]
    assert {c["model"] for c in skipped} == {"lstm", "linear"} and len(skipped) == 2 * len(BACKENDS)
    assert all(c["status"] == "skipped" and c["backend"] in BACKENDS for c in skipped)
    assert all("exist on NVIDIA GPUs only and this run is on cpu" in c["problems"][0] for c in skipped)
    assert f"{len(skipped)} skipped" in proc.stdout
    xml = (tmp_path / "parity.xml").read_text()
    assert xml.count("<skipped") == len(skipped) and "lstm/*[*,tf32]" in xml
    # the generic LSTM loop runs on a CPU too, only for the model that has an LSTM, every path
    generic = [c for c in cells if c["variant"] == "lstm-no-cudnn"]
    assert {c["model"] for c in generic} == {"lstm"} and len(generic) == 5
    for c in generic:
        assert c["status"] == "pass", c["problems"]
        assert any(
            p.startswith("note: the LSTM on Keras's generic loop (use_cudnn=False): rel L2") for p in c["problems"]
        )


def test_tf32_knobs_are_recorded_and_change_nothing_on_a_cpu(tmp_path):
    plain = run_backends(
        list(BACKENDS), ["lstm", "cnn"], tmp_path / "plain", RunFlags(training=False), registry=BUILTIN
    )
    varied = run_backends(
        list(BACKENDS), ["lstm", "cnn"], tmp_path / "tf32", RunFlags(training=False, tf32=True), registry=BUILTIN
    )
    for b in BACKENDS:
        assert not plain[b].error and not varied[b].error, (plain[b].error, varied[b].error)
        knobs = varied[b].knobs
        assert knobs["lstm_use_cudnn"] == plain[b].knobs["lstm_use_cudnn"] == "auto"
        tf32 = {
            "tensorflow": knobs.get("tensor_float_32"),
            "jax": knobs.get("default_matmul_precision") == "tensorfloat32",
            "torch": knobs.get("cuda_matmul_allow_tf32"),
        }[b]
        assert tf32 is True, knobs
        assert plain[b].arrays.keys() == varied[b].arrays.keys()
        for k, v in plain[b].arrays.items():
            assert np.array_equal(v, varied[b].arrays[k]), (b, k)

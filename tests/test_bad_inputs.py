"""Bad input on every command, as a table: each case exits with its code and ends with one line
naming the thing, prints no traceback, leaves golden/ as it was and, for a usage error, starts no
process and writes nothing (a process started in this process is refused, so a case that would
reach a backend fails at once instead of running it).

The cases run in-process through cli.main (fast); a few run again as `python -m keras_parity` to
hold the in-process result to the real one. Faults only a backend process finds are the second
table, SLOW, run as the real command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badinputs import (
    CONFIG,
    CONFIG_WITH_INPUT,
    ROOT,
    Case,
    case,
    damaged_member,
    fingerprint,
    folder,
    keras_file,
    npz,
    npz_member,
    pickled_npz,
    plant,
    raw,
    text,
    truncated_npz,
    zip_of,
)

from keras_parity import cli

USAGE, INFRA = 2, 3
GARBAGE = bytes(range(256)) * 4
M = {"m.keras": keras_file()}  # a model file the harness accepts without Keras
IN = {**M, "in.npz": npz()}
M2 = {**M, "m2.keras": keras_file()}
X = {"x.keras": keras_file(CONFIG_WITH_INPUT)}  # a model with one input x of shape (None, 3)
_NPY = npz_member(np.zeros((2, 3), np.float32))
SNAPSHOT = "g1/snapshots/cpu-x86_64-test/jax/keras-3.10.0_jax-0.10.2.npz"
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
HEADER = (
    "recorded,platform,device,backend,keras,library_version,versions,model,case,path,rel_l2,tol_rel_l2,"
    "prev_keras,max_ulp_prev_keras,same_bits_prev_keras,prev_library,max_ulp_prev_library,"
    "same_bits_prev_library,verdict,reason\n"
)


def row(**changes) -> str:
    """One history row of a passing cell, with `changes`."""
    fields = {
        "recorded": "2026-11-22", "platform": "cpu-x86_64-test", "device": "cpu", "backend": "jax",
        "keras": "3.10.0", "library_version": "0.10.2", "versions": "jax=0.10.2", "model": "linear",
        "case": "dense_nobias", "path": "eager", "rel_l2": "4e-08", "tol_rel_l2": "1e-05", "prev_keras": "",
        "max_ulp_prev_keras": "", "same_bits_prev_keras": "", "prev_library": "", "max_ulp_prev_library": "",
        "same_bits_prev_library": "", "verdict": "pass", "reason": "",
    } | changes  # fmt: skip
    return ",".join(fields.values()) + "\n"


def history(*rows: str, folder: str = "g1") -> dict:
    return {f"{folder}/history.csv": text(HEADER + "".join(rows))}


def with_model(name: str, writer) -> dict:
    return {**M, name: writer}


# fmt: off
ARGPARSE = [
    case("top-no-command", "", USAGE, "required: cmd"),
    case("top-unknown-command", "paritee", USAGE, "invalid choice: 'paritee'"),
    case("top-unknown-option", "--bogus parity", USAGE, "unrecognized arguments: --bogus"),
    case("parity-unknown-option", "parity --no-such-option", USAGE, "unrecognized arguments: --no-such-option"),
    case("parity-positional", "parity linear", USAGE, "unrecognized arguments: linear"),
    case("parity-device", "parity --device tpu", USAGE, "argument --device: invalid choice: 'tpu'"),
    case("parity-twins", "parity --twins pytorch", USAGE, "argument --twins: invalid choice: 'pytorch'"),
    case("parity-isa-cap", "parity --isa-cap sse2", USAGE, "argument --isa-cap: invalid choice: 'sse2'"),
    case("parity-policy", "parity --policy float8", USAGE, "argument --policy: invalid choice: 'float8'"),
    case("parity-time-limit-word", "parity --time-limit soon", USAGE, "argument --time-limit: invalid float value"),
    case("parity-time-limit-empty", "parity --time-limit=", USAGE, "argument --time-limit: invalid float value: ''"),
    case("parity-rel-l2-word", "parity --rel-l2 tiny", USAGE, "argument --rel-l2: invalid float value: 'tiny'"),
    case("parity-model-no-value", "parity --model", USAGE, "argument --model: expected one argument"),
    case("parity-with-no-value", "parity --with", USAGE, "argument --with: expected one argument"),
    case("parity-verbose-value", "parity --verbose=yes", USAGE, "ignored explicit argument 'yes'"),
    case("golden-unknown-option", "golden --strict-bits", USAGE, "unrecognized arguments: --strict-bits"),
    case("golden-snapshots-only-value", "golden --snapshots-only yes", USAGE, "unrecognized arguments: yes"),
    case("golden-device", "golden --device gpu", USAGE, "argument --device: invalid choice: 'gpu'"),
    case("golden-time-limit-word", "golden --time-limit 1h", USAGE, "invalid float value: '1h'"),
    case("bench-unknown-option", "bench --with keras==3.0", USAGE, "unrecognized arguments: --with keras==3.0"),
    case("bench-twins", "bench --twins all", USAGE, "argument --twins: invalid choice: 'all'"),
    case("images-unknown-option", "images --gpu", USAGE, "unrecognized arguments: --gpu"),
    case("images-positional", "images jax", USAGE, "unrecognized arguments: jax"),
    case("images-base-image-no-value", "images --base-image", USAGE, "argument --base-image: expected one argument"),
    case("localize-time-limit", "localize --time-limit 5", USAGE, "unrecognized arguments: --time-limit 5"),
    case("localize-case-no-value", "localize --case", USAGE, "argument --case: expected one argument"),
    case("zoo-backend", "zoo --backend mxnet", USAGE, "argument --backend: invalid choice: 'mxnet'"),
    case("zoo-ci-value", "zoo --ci=yes", USAGE, "ignored explicit argument 'yes'"),
    case("drift-backend", "drift --backend mxnet", USAGE, "argument --backend: invalid choice: 'mxnet'"),
    case("drift-axis", "drift --axis both", USAGE, "argument --axis: invalid choice: 'both'"),
    case("drift-jobs-word", "drift --jobs two", USAGE, "argument --jobs: invalid int value: 'two'"),
    case("drift-list-groups-word", "drift --list-groups many", USAGE, "argument --list-groups: invalid int value"),
    case("drift-bisect-two-values", "drift --bisect jax 0.4.30", USAGE, "argument --bisect: expected 3 arguments"),
    case("drift-merge-no-value", "drift --merge", USAGE, "argument --merge: expected at least one argument"),
    case("drift-group-dash", "drift --group -1/4", USAGE, "argument --group: expected one argument"),
    case("repro-two-cells", "repro linear/dense_nobias lstm/lstm", USAGE, "unrecognized arguments: lstm/lstm"),
    case("report-no-dirs", "report", USAGE, "the following arguments are required: dirs"),
    case("report-out-no-value", "report d --out", USAGE, "argument --out: expected one argument"),
    case("noise-unknown-option", "noise --backend jax", USAGE, "unrecognized arguments: --backend jax"),
    case("noise-unknown-model", "noise --model nosuch", USAGE, "unknown built-in model 'nosuch'; choose from: linear"),
    case("noise-positional", "noise now", USAGE, "unrecognized arguments: now"),
    case("noise-out-no-value", "noise --out", USAGE, "argument --out: expected one argument"),
    case("growth-top-word", "growth --top many", USAGE, "argument --top: 'many' is not a whole number above 0"),
    case("growth-top-float", "growth --top 2.5", USAGE, "argument --top: '2.5' is not a whole number above 0"),
    case("growth-unknown-option", "growth --backend jax", USAGE, "unrecognized arguments: --backend jax"),
]

MODEL_FILES = [
    case("file-missing", "parity --model-file missing.keras", USAGE, "does not exist; pass the path of a .keras"),
    case("file-folder", "parity --model-file adir", USAGE, "is a directory, not a .keras file", {"adir": folder()}),
    case("file-empty-path", "parity --model-file=", USAGE, "is a directory, not a .keras file"),
    case("file-savedmodel", "parity --model-file sm", USAGE, "is a TensorFlow SavedModel (Keras 2 / tf.keras)",
         {"sm": folder("saved_model.pb")}),
    case("file-h5", "parity --model-file old.h5", USAGE, "is a Keras 2 HDF5 file", {"old.h5": raw(GARBAGE)}),
    case("file-hdf5-upper", "parity --model-file old.HDF5", USAGE, "is a Keras 2 HDF5 file"),
    case("file-suffix", "parity --model-file model.pt", USAGE, "is not a .keras file", {"model.pt": raw(GARBAGE)}),
    case("file-no-suffix", "parity --model-file model", USAGE, "is not a .keras file", {"model": keras_file()}),
    case("file-zero-bytes", "parity --model-file e.keras", USAGE, "is not a readable .keras archive",
         {"e.keras": raw(b"")}),
    case("file-garbage", "parity --model-file j.keras", USAGE, "is not a readable .keras archive",
         {"j.keras": raw(GARBAGE)}),
    case("file-truncated", "parity --model-file t.keras", USAGE, "is not a readable .keras archive",
         {"t.keras": truncated_npz()}),
    case("file-npz-renamed", "parity --model-file w.keras", USAGE, "damaged .keras archive (it has no config.json)",
         {"w.keras": npz()}),
    case("file-no-config", "parity --model-file n.keras", USAGE, "damaged .keras archive (it has no config.json)",
         {"n.keras": zip_of({"metadata.json": b"{}"})}),
    case("file-damaged-config", "parity --model-file d.keras", USAGE, "(member config.json is damaged)",
         {"d.keras": damaged_member({"config.json": CONFIG, "metadata.json": b"{}"}, "config.json")}),
    case("file-damaged-weights", "golden --model-file d.keras", USAGE, "(member model.weights.h5 is damaged)",
         {"d.keras": damaged_member({"config.json": CONFIG, "model.weights.h5": b"HDF" * 50}, "model.weights.h5")}),
    case("file-symlink-loop", "parity --model-file loop.keras", USAGE, "loop.keras does not exist",
         {"loop.keras": lambda p: p.symlink_to(p)}),
    case("file-not-ascii", "parity --model-file modèle.keras", USAGE, "modèle.keras does not exist"),
    case("file-builtin-name", "parity --model-file linear.keras", USAGE, "model name 'linear' is already taken",
         {"linear.keras": keras_file()}),
    case("golden-file-builtin-name", "golden --model-file lstm.keras", USAGE, "model name 'lstm' is already taken",
         {"lstm.keras": keras_file()}),
    case("golden-file-garbage", "golden --model-file j.keras", USAGE, "not a readable .keras",
         {"j.keras": raw(GARBAGE)}),
    case("golden-file-missing", "golden --snapshots-only --model-file gone.keras", USAGE, "does not exist"),
    case("bench-file-h5", "bench --model-file m.h5", USAGE, "is a Keras 2 HDF5 file"),
    case("localize-file-folder", "localize --model-file adir", USAGE, "is a directory", {"adir": folder()}),
    case("drift-file-garbage", "drift --model-file j.keras", USAGE, "not a readable .keras", {"j.keras": raw(GARBAGE)}),
    case("repro-file-missing", "repro --backend jax --model-file gone.keras", USAGE, "does not exist"),
]

INPUTS = [
    case("inputs-missing", "parity --model-file m.keras --inputs none.npz", USAGE, "none.npz does not exist", M),
    case("inputs-not-zip", "parity --model-file m.keras --inputs in.txt", USAGE, "is not an .npz archive",
         with_model("in.txt", text("1,2,3\n"))),
    case("inputs-zero-bytes", "parity --model-file m.keras --inputs e.npz", USAGE, "is not an .npz archive",
         with_model("e.npz", raw(b""))),
    case("inputs-npy", "parity --model-file m.keras --inputs x.npy", USAGE, "is not an .npz archive",
         with_model("x.npy", lambda p: np.save(p, np.zeros(3)))),
    case("inputs-folder", "parity --model-file m.keras --inputs adir", USAGE, "is not an .npz archive",
         with_model("adir", folder())),
    case("inputs-folder-named-npz", "parity --model-file m.keras --inputs d.npz", USAGE, "is not an .npz archive",
         with_model("d.npz", folder())),
    case("inputs-truncated", "parity --model-file m.keras --inputs t.npz", USAGE, "is not an .npz archive",
         with_model("t.npz", truncated_npz())),
    case("inputs-pickled", "parity --model-file m.keras --inputs p.npz", USAGE, "allow_pickle=False",
         with_model("p.npz", pickled_npz())),
    case("inputs-no-arrays", "parity --model-file m.keras --inputs e.npz", USAGE, "readable .npz of arrays (no arrays)",
         with_model("e.npz", zip_of({}))),
    case("inputs-damaged-member", "parity --model-file m.keras --inputs d.npz", USAGE, "Bad CRC-32 for file 'x.npy'",
         with_model("d.npz", damaged_member({"x.npy": b"\x93NUMPY" + GARBAGE}, "x.npy"))),
    case("inputs-two-models", "parity --model-file m.keras --model-file m2.keras --inputs in.npz", USAGE,
         "--inputs belongs to one model", {**IN, **M2}),
    case("inputs-builtin-model", "parity --model linear --inputs in.npz", USAGE, "--inputs belongs to one model", IN),
    case("inputs-no-model", "parity --inputs in.npz", USAGE, "--inputs belongs to one model", IN),
    case("golden-inputs-pickled", "golden --model-file m.keras --inputs p.npz", USAGE, "allow_pickle=False",
         with_model("p.npz", pickled_npz())),
    case("golden-inputs-two-models", "golden --model linear --model lstm --inputs in.npz", USAGE, "belongs to one",
         IN),
    case("bench-inputs-truncated", "bench --model-file m.keras --inputs t.npz", USAGE, "is not an .npz archive",
         with_model("t.npz", truncated_npz())),
    case("localize-inputs-pickled", "localize --model-file m.keras --inputs p.npz", USAGE, "allow_pickle=False",
         with_model("p.npz", pickled_npz())),
    case("repro-inputs-garbage", "repro --backend jax --model-file m.keras --inputs in.npz", USAGE,
         "is not an .npz archive", with_model("in.npz", raw(GARBAGE))),
    case("drift-inputs-missing", "drift --model-file m.keras --inputs none.npz", USAGE, "does not exist", M),
]

SELECTION = [
    case("parity-unknown-backend", "parity --backend mxnet", USAGE, "unknown backend 'mxnet'; choose from"),
    case("parity-backend-case", "parity --backend JAX", USAGE, "unknown backend 'JAX'"),
    case("parity-backend-empty", "parity --backend=", USAGE, "unknown backend ''"),
    case("parity-unknown-model", "parity --model nosuch", USAGE, "unknown model 'nosuch'; choose from"),
    case("parity-model-case", "parity --model LSTM", USAGE, "unknown model 'LSTM'"),
    case("parity-model-empty", "parity --model=", USAGE, "unknown model ''"),
    case("parity-second-model-unknown", "parity --model linear --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("parity-builder-no-function", "parity --model pkg.mod:", USAGE, "is neither a built-in model nor"),
    case("parity-builder-no-module", "parity --model :build", USAGE, "is neither a built-in model nor"),
    case("parity-builder-two-colons", "parity --model a:b:c", USAGE, "is neither a built-in model nor"),
    case("parity-builder-digit", "parity --model 1pkg:build", USAGE, "is neither a built-in model nor"),
    case("parity-builder-space", ["parity", "--model", "my pkg:build"], USAGE, "is neither a built-in model nor"),
    case("parity-model-and-file", "parity --model nosuch --model-file m.keras", USAGE, "unknown model 'nosuch'", M),
    case("parity-time-limit-zero", "parity --time-limit 0", USAGE, "--time-limit 0 is not a duration"),
    case("parity-time-limit-negative", "parity --time-limit -5", USAGE, "--time-limit -5 is not a duration"),
    case("parity-time-limit-minus-inf", "parity --time-limit=-inf", USAGE, "--time-limit -inf is not a duration"),
    case("parity-docker-unknown-model", "parity --docker --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("parity-cuda-unknown-backend", "parity --device cuda --backend cntk", USAGE, "unknown backend 'cntk'"),
    case("golden-unknown-model", "golden --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("golden-unknown-backend", "golden --backend theano", USAGE, "unknown backend 'theano'"),
    case("golden-time-limit-negative", "golden --time-limit -1", USAGE, "--time-limit -1 is not a duration"),
    case("golden-builder-bad", "golden --model my-pkg:build", USAGE, "is neither a built-in model nor"),
    case("bench-unknown-model", "bench --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("bench-time-limit-zero", "bench --time-limit 0", USAGE, "--time-limit 0 is not a duration"),
    case("bench-file-without-inputs", "bench --model-file m.keras", USAGE, "takes --model-file with --inputs", M),
    case("bench-builder", "bench --model pkg.mod:build", USAGE, "takes --model-file with --inputs"),
    case("images-unknown-backend", "images --backend mxnet", USAGE, "unknown backend 'mxnet'"),
    case("images-prune-unknown-backend", "images --prune --backend mxnet", USAGE, "unknown backend 'mxnet'"),
    case("images-cuda-unknown-backend", "images --cuda --backend tf", USAGE, "unknown backend 'tf'"),
    case("localize-every-model", "localize", USAGE, "localize profiles one model"),
    case("localize-two-models", "localize --model linear --model lstm", USAGE, "localize profiles one model"),
    case("localize-unknown-case", "localize --model linear --case nosuch", USAGE, "no case ['nosuch'] in linear"),
    case("localize-moving-stats", "localize --model bn_mlp --case moving_stats", USAGE, "no case ['moving_stats']"),
    case("localize-unknown-model", "localize --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("localize-unknown-backend", "localize --model linear --backend mxnet", USAGE, "unknown backend 'mxnet'"),
    case("sensitivity-unknown-model", "sensitivity --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("faults-unknown-fault", "faults --fault nosuch", USAGE, "unknown fault 'nosuch'; choose from:"),
    case("faults-unknown-model", "faults --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("faults-zero-clean-runs", "faults --clean 0", USAGE, "'0' is not a number of runs"),
    case("parity-patch-missing", "parity --patch nosuch.py", USAGE, "not a Python file; give the path of a .py file"),
    case("parity-patch-docker", "parity --patch p.py --docker", USAGE, "--patch runs in the local environments only",
         {"p.py": text("x = 1\n")}),
    case("sensitivity-unknown-case", "sensitivity --model linear --case nosuch", USAGE, "no forward case ['nosuch']"),
    case("sensitivity-training-case", "sensitivity --model linear --case train_sgd", USAGE, "no forward case"),
    case("sensitivity-unknown-backend", "sensitivity --model linear --backend mxnet", USAGE, "unknown backend 'mxnet'"),
    case("localize-two-files", "localize --model-file m.keras --model-file m2.keras", USAGE, "profiles one model", M2),
    case("localize-out-a-file", "localize --model linear --case x --out f", USAGE, "is a file", {"f": text("x")}),
    case("zoo-unknown-model", "zoo --model nosuch", USAGE, "no model nosuch in the zoo; choose from"),
    case("zoo-empty-model", "zoo --model=", USAGE, "in the zoo; choose from"),
    case("zoo-two-unknown", "zoo --model a --ci --model b", USAGE, "no model a, b in the zoo"),
    case("zoo-unknown-with-backend", "zoo --model nosuch --backend jax", USAGE, "no model nosuch in the zoo"),
    case("drift-unknown-model", "drift --model nosuch", USAGE, "unknown model 'nosuch'"),
]

WITH = [
    case("with-name-only", "parity --with keras", USAGE, "--with 'keras' is not a pin; write it as NAME==VERSION"),
    case("with-range", "parity --with keras>=3.0", USAGE, "--with 'keras>=3.0' is not a pin"),
    case("with-single-equals", "parity --with keras=3.0", USAGE, "--with 'keras=3.0' is not a pin"),
    case("with-no-version", "parity --with keras==", USAGE, "--with 'keras==' is not a pin"),
    case("with-no-name", "parity --with ==3.0", USAGE, "--with '==3.0' is not a pin"),
    case("with-shell", ["parity", "--with", "keras==3.0; rm -rf ~"], USAGE, "is not a pin"),
    case("with-second-bad", "parity --with keras==3.0 --with jax", USAGE, "--with 'jax' is not a pin"),
    case("with-docker-not-pin", "parity --docker --with keras", USAGE, "--with 'keras' is not a pin"),
    case("with-unlocked-package", "parity --with nosuchpkg==1.0", USAGE, "holds nosuchpkg; name a package of"),
    case("with-torch-on-jax", "parity --backend jax --with torch==2.0.0", USAGE, "no lock of jax holds torch"),
    case("with-unknown-model", "parity --with keras==3.0 --model nosuch", USAGE, "unknown model 'nosuch'"),
    case("with-bad-time-limit", "parity --with keras==3.0 --time-limit 0", USAGE, "is not a duration"),
]

DRIFT = [
    case("drift-cell-no-equals", "drift keras", USAGE, "cannot read 'keras' as a pin"),
    case("drift-cell-no-version", "drift keras= jax=0.10.2", USAGE, "cannot read 'keras=' as a pin"),
    case("watch-unknown-backend", "watch --backend mxnet", USAGE, "unknown backend 'mxnet'; choose from"),
    case("drift-cell-unknown-library", "drift numpy=2.0", USAGE, "unknown library 'numpy' in 'numpy=2.0'"),
    case("drift-cell-no-backend", "drift keras=3.10.0", USAGE, "a cell names exactly one backend library, got none"),
    case("drift-cell-two-backends", "drift jax=0.10.2 torch=2.9.0", USAGE, "names exactly one backend library"),
    case("drift-group-word", "drift --group half", USAGE, "cannot read 'half' as a group; write it as I/N"),
    case("drift-group-zero", "drift --group 0/4", USAGE, "cannot read '0/4' as a group"),
    case("drift-group-over", "drift --group 5/4", USAGE, "cannot read '5/4' as a group"),
    case("drift-group-of-none", "drift --group 1/0", USAGE, "cannot read '1/0' as a group"),
    case("drift-list-groups-zero", "drift --list-groups 0", USAGE, "the number of groups must be at least 1, got 0"),
    case("drift-list-groups-negative", "drift --list-groups -2", USAGE, "must be at least 1, got -2"),
    case("drift-list-groups-full", "drift --full --list-groups 0", USAGE, "the number of groups must be at least 1"),
    case("drift-bisect-unknown-library", "drift --bisect numpy 1.0 2.0", USAGE, "cannot bisect 'numpy'"),
    case("drift-bisect-held-bad", "drift --bisect jax 0.4.30 0.4.31 keras", USAGE, "cannot read 'keras' as a pin"),
    case("drift-bisect-held-two", "drift --bisect keras 3.0 3.1 jax=1 torch=2", USAGE, "exactly one backend library"),
    case("drift-merge-missing", "drift --merge nowhere", USAGE, "nowhere: no history.csv; pass folders written by"),
    case("drift-merge-empty-folder", "drift --merge g1", USAGE, "g1: no history.csv", {"g1": folder()}),
    case("drift-merge-bad-header", "drift --merge g1", USAGE, "history.csv:1: header is not",
         {"g1/history.csv": text("a,b\n")}),
    case("drift-merge-cut-short", "drift --merge g1", USAGE, "history.csv:3: last line is cut short",
         {"g1/history.csv": text(HEADER + row() + "2026-11-22,cpu")}),
    case("drift-merge-fields", "drift --merge g1", USAGE, "history.csv:2: 2 fields, expected 20", history("x,y\n")),
    case("drift-merge-verdict", "drift --merge g1", USAGE, "verdict 'maybe' is not one of",
         history(row(verdict="maybe"))),
    case("drift-merge-rel-l2", "drift --merge g1", USAGE, "rel_l2 'small' is not a number",
         history(row(rel_l2="small"))),
    case("drift-merge-nan-pass", "drift --merge g1", USAGE, "rel_l2 is NaN in a passing row",
         history(row(rel_l2="nan"))),
    case("drift-merge-ulp", "drift --merge g1", USAGE, "max_ulp_prev_keras '-3' is not a count",
         history(row(max_ulp_prev_keras="-3"))),
    case("drift-merge-same-bits", "drift --merge g1", USAGE, "same_bits_prev_library 'maybe' is not yes, no",
         history(row(same_bits_prev_library="maybe"))),
    case("drift-merge-identity", "drift --merge g1", USAGE, "a cell identity field is empty",
         history(row(model=""))),
    case("drift-merge-second-bad", "drift --merge g1 g2", USAGE, "g2: no history.csv", history(row())),
    case("drift-merge-second-corrupt", "drift --merge g1 g2", USAGE, "g2/history.csv:2: verdict",
         {**history(row()), **history(row(verdict="?"), folder="g2")}),
    case("drift-merge-snapshot-garbage", "drift --merge g1", USAGE, "not a readable snapshot",
         {**history(row()), SNAPSHOT: raw(GARBAGE)}),
    case("drift-merge-snapshot-pickled", "drift --merge g1", USAGE, "not a readable snapshot",
         {**history(row()), SNAPSHOT: pickled_npz()}),
    case("drift-user-history-corrupt", "drift --model-file m.keras --golden-dir g", USAGE, "header is not",
         with_model("g/drift/history.csv", text("recorded\n"))),
    case("drift-user-history-cut", "drift --model-file m.keras", USAGE, "last line is cut short",
         with_model("golden/drift/history.csv", text(HEADER + "2026"))),
]

REPRO = [
    case("repro-no-backend", "repro linear/dense_nobias", USAGE, "no backend named; pass --backend with one of"),
    case("repro-unknown-backend", "repro linear/dense_nobias --backend mxnet", USAGE, "unknown backend 'mxnet'"),
    case("repro-second-backend-unknown", "repro linear/dense_nobias --backend jax --backend mx", USAGE, "'mx'"),
    case("repro-no-cell", "repro --backend jax", USAGE, "name the cell as MODEL/CASE, e.g. lstm/lstm (got '')"),
    case("repro-cell-no-slash", "repro lstm --backend jax", USAGE, "name the cell as MODEL/CASE"),
    case("repro-unknown-model", "repro nosuch/x --backend jax", USAGE, "unknown model 'nosuch'"),
    case("repro-unknown-case", "repro linear/nosuch --backend jax", USAGE, "unknown case 'nosuch' of linear"),
    case("repro-empty-case", "repro linear/ --backend jax", USAGE, "unknown case '' of linear"),
    case("repro-training-case", "repro lstm/train_adam --backend jax", USAGE, "is a training case"),
    case("repro-moving-stats", "repro bn_mlp/moving_stats --backend torch", USAGE, "moving statistics"),
    case("repro-unknown-model-flag", "repro --model nosuch --backend jax", USAGE, "unknown model 'nosuch'"),
    case("repro-builtin-no-reference", "repro linear/dense_nobias --backend jax --golden-dir g", USAGE,
         "no float64 reference for linear", {"g": folder()}),
    case("repro-user-cell-mismatch", "repro other/x --backend jax --model-file m.keras", USAGE,
         "names model 'other' but the model given is m", M),
    case("repro-user-no-reference", "repro --backend jax --model-file m.keras", USAGE, "no float64 reference for m", M),
    case("repro-user-unknown-case", "repro m/nosuch --backend jax --model-file m.keras", USAGE, "unknown case", M),
    case("repro-user-corrupt-reference", "repro --backend jax --model-file m.keras", USAGE, "is corrupt",
         with_model("golden/m/reference.npz", raw(GARBAGE))),
    case("repro-user-pickled-reference", "repro --backend jax --model-file m.keras --golden-dir g", USAGE,
         "allow_pickle=False", with_model("g/m/reference.npz", pickled_npz())),
    case("repro-user-reference-no-case", "repro --backend jax --model-file m.keras", USAGE,
         "has no outputs of case 'inference'", with_model("golden/m/reference.npz", npz(**{"other/y": np.zeros(2)}))),
]

REPORT = [
    case("report-missing-dir", "report nowhere", USAGE, "nowhere/parity.json is missing; point `nox -s report`"),
    case("report-empty-dir", "report d", USAGE, "d/parity.json is missing", {"d": folder()}),
    case("report-second-missing", "report d e", USAGE, "e/parity.json is missing",
         {"d/parity.json": text('{"cells": []}')}),
    case("report-bad-json", "report d", USAGE, "d/parity.json is not valid JSON", {"d/parity.json": text("{")}),
    case("report-empty-json", "report d", USAGE, "is not valid JSON", {"d/parity.json": text("")}),
    case("report-binary-json", "report d", USAGE, "is not valid JSON", {"d/parity.json": raw(GARBAGE)}),
    case("report-cut-json", "report d", USAGE, "rerun `nox -s parity`", {"d/parity.json": text('{"cells": [{"mo')}),
]

# What issue 27 found: each was a traceback, an exit 3 for the user's own mistake, or a silent pass.
FOUND = [
    case("parity-out-a-file", "parity --out f", USAGE, "f is a file, not a folder; pass --out a folder",
         {"f": text("x")}),
    case("golden-out-a-file", "golden --out f", USAGE, "f is a file, not a folder", {"f": text("x")}),
    case("bench-out-a-file", "bench --out f", USAGE, "f is a file, not a folder", {"f": text("x")}),
    case("parity-out-in-proc", "parity --out /proc/nope", USAGE, "--out /proc/nope cannot be written"),
    case("golden-out-in-proc", "golden --out /proc/nope/deeper", USAGE, "/proc/nope/deeper cannot be written"),
    case("repro-out-a-file", "repro linear/dense_nobias --backend jax --out f", USAGE, "is a file, not a folder",
         {"f": text("x")}),
    case("report-out-a-file", "report d --out f", USAGE, "--out f is a file",
         {"d/parity.json": text('{"cells": []}'), "f": text("x")}),
    case("parity-env-time-limit-word", "parity --model linear", USAGE,
         "KERAS_PARITY_TIME_LIMIT=abc: 'abc' is not a number",
         env={"KERAS_PARITY_TIME_LIMIT": "abc"}),
    case("parity-env-time-limit-nan", "parity --model linear", USAGE, "KERAS_PARITY_TIME_LIMIT=nan",
         env={"KERAS_PARITY_TIME_LIMIT": "nan"}),
    case("golden-env-time-limit-zero", "golden --model linear", USAGE, "KERAS_PARITY_TIME_LIMIT=0: 0 is not a duration",
         env={"KERAS_PARITY_TIME_LIMIT": "0"}),
    case("bench-env-time-limit-negative", "bench", USAGE, "KERAS_PARITY_TIME_LIMIT=-3",
         env={"KERAS_PARITY_TIME_LIMIT": "-3"}),
    case("parity-time-limit-nan", "parity --time-limit nan", USAGE, "--time-limit nan is not a duration"),
    case("parity-time-limit-inf", "parity --time-limit inf", USAGE, "--time-limit inf is not a duration"),
    case("parity-rel-l2-negative", "parity --model-file m.keras --rel-l2 -1", USAGE, "--rel-l2 -1 can never pass", M),
    case("parity-rel-l2-zero", "parity --model-file m.keras --rel-l2 0", USAGE, "--rel-l2 0 can never pass", M),
    case("golden-rel-l2-nan", "golden --model-file m.keras --rel-l2 nan", USAGE, "--rel-l2 nan can never pass", M),
    case("parity-custom-objects-empty", ["parity", "--model-file", "m.keras", "--custom-objects", ""], USAGE,
         "--custom-objects '' is not a module name", M),
    case("parity-custom-objects-file", "parity --model-file m.keras --custom-objects my/layers.py", USAGE,
         "give the module, e.g. --custom-objects my.layers", M),
    case("parity-golden-dir-missing", "parity --model-file m.keras --golden-dir nowhere", USAGE,
         "nowhere does not exist; pass the folder `keras-parity golden` wrote", M),
    case("parity-golden-dir-a-file", "parity --model-file m.keras --golden-dir f", USAGE, "is a file",
         {**M, "f": text("x")}),
    case("file-dots-name", "parity --model-file ...keras", USAGE, "golden folder '..'", {"...keras": keras_file()}),
    case("file-drift-name", "golden --model-file drift.keras", USAGE, "golden folder 'drift' ('drift' is reserved)",
         {"drift.keras": keras_file()}),
    case("file-hidden-name", "golden --model-file .hidden.keras", USAGE, "'.hidden' (a name must not start with '.')",
         {".hidden.keras": keras_file()}),
    case("file-two-same-name", "parity --model-file a/m.keras --model-file b/m.keras", USAGE,
         "are both named 'm'", {"a/m.keras": keras_file(), "b/m.keras": keras_file()}),
    case("file-config-not-json", "parity --model-file c.keras", USAGE, "config.json is not a JSON object",
         {"c.keras": keras_file(b"{not json")}),
    case("file-config-a-list", "golden --model-file c.keras", USAGE, "config.json is not a JSON object",
         {"c.keras": keras_file(b"[1, 2]")}),
    case("inputs-nan", "parity --model-file m.keras --inputs n.npz", USAGE, "holds 6 NaN and 0 Inf",
         with_model("n.npz", npz(x=np.full((2, 3), np.nan, np.float32)))),
    case("golden-inputs-inf", "golden --model-file m.keras --inputs n.npz", USAGE, "holds 0 NaN and 1 Inf",
         with_model("n.npz", npz(x=np.array([1.0, np.inf], np.float32)))),
    case("inputs-wrong-name", "parity --model-file x.keras --inputs y.npz", USAGE,
         "holds ['y', 'z'] but x takes inputs ['x']",
         {**X, "y.npz": npz(y=np.zeros((2, 3), np.float32), z=np.zeros((2, 3), np.float32))}),
    case("inputs-wrong-shape", "golden --model-file x.keras --inputs y.npz", USAGE,
         "'x' has shape (2, 4) but x takes (None, 3)",
         {**X, "y.npz": npz(x=np.zeros((2, 4), np.float32))}),
    case("inputs-wrong-dtype", "parity --model-file x.keras --inputs y.npz", USAGE, "'x' is int64 but x takes float32",
         {**X, "y.npz": npz(x=np.zeros((2, 3), np.int64))}),
    case("inputs-member-not-array", "parity --model-file m.keras --inputs t.npz", USAGE, "'notes.txt' is not an array",
         with_model("t.npz", zip_of({"x.npy": _NPY, "notes.txt": b"hello"}))),
    case("inputs-strings", "parity --model-file m.keras --inputs s.npz", USAGE, "'x' is <U5 array",
         with_model("s.npz", npz(x=np.array(["hello", "world"])))),
    case("bench-unknown-backend", "bench --backend mxnet", USAGE, "unknown backend 'mxnet'; choose from"),
    case("bench-runs-zero", "bench --runs 0", USAGE, "'0' is not a number of runs; give 1 or more"),
    case("bench-runs-word", "bench --runs some", USAGE, "'some' is not a number of runs; give 1 or more"),
    case("report-a-file", "report f", USAGE, "f is not a folder", {"f": text("x")}),
    case("report-json-a-folder", "report d", USAGE, "d/parity.json cannot be read", {"d/parity.json": folder()}),
    case("report-json-object", "report d", USAGE, "holds no list of cells", {"d/parity.json": text("{}")}),
    case("report-json-list", "report d", USAGE, "holds no list of cells", {"d/parity.json": text("[]")}),
    case("drift-merge-snapshot-name", "drift --merge g1", USAGE, "keras-bad.npz: not a snapshot name",
         {**history(row()), "g1/snapshots/cpu-x86_64-test/jax/keras-bad.npz": npz()}),
    case("growth-top-zero", "growth --top 0", USAGE, "argument --top: '0' is not a whole number above 0"),
    case("growth-top-negative", "growth --top -1", USAGE, "argument --top: '-1' is not a whole number above 0"),
]

# The terminal and the environment do not change the one line.
ENVIRONMENT = [
    case("env-narrow-terminal", "parity --backend nosuch", USAGE, "unknown backend 'nosuch'", env={"COLUMNS": "20"}),
    case("env-narrow-argparse", "parity --device tpu", USAGE, "invalid choice: 'tpu'", env={"COLUMNS": "20"}),
    case("env-forced-colour", "golden --model nosuch", USAGE, "unknown model 'nosuch'",
         env={"FORCE_COLOR": "1", "TERM": "xterm-256color"}),
    case("env-keras-backend", "localize --model nosuch", USAGE, "unknown model", env={"KERAS_BACKEND": "nosuch"}),
    case("env-isa-cap", "parity --model nosuch", USAGE, "unknown model", env={"KERAS_PARITY_ISA_CAP": "sse9"}),
]

# The machine's (3): a Docker engine that does not answer is one line before anything is built or pruned.
MACHINE = [
    case("images-prune-no-daemon", "images --prune", INFRA, "no Docker daemon answers", env=NO_DOCKER),
    case("images-prune-one-no-daemon", "images --prune --backend jax", INFRA, "set DOCKER_HOST", env=NO_DOCKER),
    case("images-prune-cuda-no-daemon", "images --prune --cuda --backend torch", INFRA, "no Docker", env=NO_DOCKER),
    case("images-no-daemon", "images --backend jax", INFRA, "no Docker daemon answers", env=NO_DOCKER),
    case("images-cuda-no-daemon", "images --cuda", INFRA, "set DOCKER_HOST", env=NO_DOCKER),
]
# fmt: on

CASES = ARGPARSE + MODEL_FILES + INPUTS + SELECTION + WITH + DRIFT + REPRO + REPORT + FOUND + ENVIRONMENT + MACHINE

AS_A_PROCESS = [
    "top-unknown-command",
    "parity-device",
    "file-damaged-config",
    "inputs-pickled",
    "drift-merge-verdict",
    "report-bad-json",
    "repro-user-no-reference",
    "env-narrow-terminal",
]

ERROR_LINE = re.compile(r"^(error: |keras-parity( \w+)?: error: )")
GOLDEN = ROOT / "golden"


class ProcessStarted(BaseException):
    """A case started a process (a backend, uv, docker, git); BaseException so that cli.main's
    handler of bugs does not turn it into an exit code."""


@pytest.fixture(scope="module")
def golden_before():
    return fingerprint(GOLDEN)


@pytest.fixture
def no_processes(monkeypatch):
    """Every process start in this process refused: a case that would reach a backend fails here."""

    def refuse(self, args, *rest, **kw):
        raise ProcessStarted(" ".join(map(str, args if isinstance(args, (list, tuple)) else [args]))[:300])

    # Popen's __init__, not the class: modules first imported by a case subclass Popen (run/launch.py).
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def _tree(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def in_process(c: Case, tmp_path, monkeypatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of cli.main on the case, run in `tmp_path` with its files."""
    plant(tmp_path, c.files)
    monkeypatch.chdir(tmp_path)
    for name, value in c.env.items():
        monkeypatch.setenv(name, value)
    try:
        code = cli.main(list(c.argv))
    except SystemExit as exc:  # argparse's own errors exit 2 themselves
        code = exc.code
    except ProcessStarted as exc:
        pytest.fail(f"{c.id} started a process before its error: {exc}")
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(c: Case, code: int, out: str, err: str) -> str:
    """The case's exit code, its line last on stderr and the only error line, no traceback, no colour."""
    both = out + err
    assert code == c.code, both
    assert "Traceback" not in both and "\x1b[" not in both, both
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and ERROR_LINE.match(lines[-1]), both
    assert c.says in lines[-1], lines[-1]
    assert [line for line in both.splitlines() if ERROR_LINE.match(line)] == [lines[-1]], both
    if not lines[-1].startswith("keras-parity"):  # argparse prints its usage first; the harness one line
        assert len(lines) == 1, err
    return lines[-1]


def test_the_table_covers_every_command():
    from keras_parity.commands import catalog

    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 100
    commands = {c.argv[0] for c in CASES if c.argv}
    assert {m.__name__.rpartition(".")[2] for m in catalog.COMMANDS} <= commands
    assert set(AS_A_PROCESS) <= set(ids)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_bad_input(c, tmp_path, monkeypatch, capsys, no_processes, golden_before):
    code, out, err = in_process(c, tmp_path, monkeypatch, capsys)
    assert_one_error_line(c, code, out, err)
    assert fingerprint(GOLDEN) == golden_before
    if c.code == USAGE:  # refused before anything ran: nothing written where it ran
        assert _tree(tmp_path) == {str(p) for p in _planted(c, tmp_path)}


def _planted(c: Case, folder) -> list:
    """What plant() made for the case: its files, their folders, and what a folder writer put in."""
    made = set()
    for rel in c.files:
        path = folder / rel
        made |= {p.relative_to(folder) for p in [path, *path.parents] if p != folder and p.is_relative_to(folder)}
        if path.is_dir():
            made |= {p.relative_to(folder) for p in path.rglob("*")}
    return sorted(made)


def _as_a_process(c: Case, cwd) -> subprocess.CompletedProcess:
    """`python -m keras_parity ARGV` in `cwd`, as a user runs it ({tmp} in ARGV: `cwd`)."""
    env = {**os.environ, **c.env, "PYTHONPATH": str(ROOT)}
    argv = [w.replace("{tmp}", str(cwd)) for w in c.argv]
    return subprocess.run(
        [sys.executable, "-m", "keras_parity", *argv], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("c", [c for c in CASES if c.id in AS_A_PROCESS], ids=lambda c: c.id)
def test_the_real_command_agrees(c, tmp_path, monkeypatch, capsys, no_processes, golden_before):
    code, out, err = in_process(c, tmp_path, monkeypatch, capsys)
    line = assert_one_error_line(c, code, out, err)
    monkeypatch.undo()  # the real command starts its own process
    proc = _as_a_process(c, tmp_path)
    assert assert_one_error_line(c, proc.returncode, proc.stdout, proc.stderr) == line
    assert fingerprint(GOLDEN) == golden_before


# --- faults only a backend process finds: run as the real command (slow) ------------------

HANG = {"slow_models.py": text("import time\n\n\ndef hang():\n    time.sleep(600)\n")}
# Long enough for a jax runner to start and reach the builder on a loaded machine (2-3 s seen,
# with CI's two test files at a time), short because each of these tests waits it out.
LIMIT = {"KERAS_PARITY_TIME_LIMIT": "10"}

# fmt: off
SLOW = [
    case("slow-parity-hung-builder", "parity --model slow_models:hang --backend jax --time-limit 10 --out {tmp}/o",
         INFRA, "jax did not finish within 10 s (it was on slow_models.hang)", HANG),
    case("slow-golden-hung-builder", "golden --model slow_models:hang --backend jax --out {tmp}/out", INFRA,
         "jax did not finish within 10 s", HANG, env=LIMIT),
    case("slow-localize-hung-builder", "localize --model slow_models:hang --backend jax --out {tmp}/out", INFRA,
         "jax did not finish within 10 s", HANG, env=LIMIT),
]
# fmt: on


def _running_in(folder) -> list[str]:
    """The command lines of processes that name `folder` (a backend left running)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # not a process, or one that has just ended
            continue
        if proc.name.isdigit() and str(folder) in cmd:
            found.append(cmd)
    return found


def test_a_process_left_running_is_found(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(tmp_path / "out")])
    try:
        for _ in range(100):  # its command line shows once it has started
            if _running_in(tmp_path):
                break
            time.sleep(0.05)
        assert len(_running_in(tmp_path)) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _running_in(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("c", SLOW, ids=lambda c: c.id)
def test_a_fault_in_a_backend_process(c, tmp_path, golden_before):
    """The fault's exit code and its line, no traceback, golden/ and the user's goldens as they
    were, no backend process left running and nothing written into the checkout."""
    plant(tmp_path, c.files)
    checkout = _untracked_and_changed()
    proc = _as_a_process(c, tmp_path)
    both = proc.stdout + proc.stderr
    assert proc.returncode == c.code, both
    assert "Traceback" not in both and any(c.says in line for line in both.splitlines()), both
    assert fingerprint(GOLDEN) == golden_before
    assert not (tmp_path / "golden").exists()  # a builder's goldens: none written for a model that did not run
    assert _running_in(tmp_path) == []
    assert _untracked_and_changed() == checkout  # nothing written into the checkout either


def _untracked_and_changed() -> str:
    git = ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"]
    return subprocess.run(git, capture_output=True, text=True, check=True).stdout

"""The `keras_parity` pytest fixture: your model's outputs against goldens named after the test.

    def test_classifier(keras_parity):
        model = keras.saving.load_model("classifier.keras")
        keras_parity.check(model, {"image": images})

check() runs the model under the test process's KERAS_BACKEND (predict, and the eager call
where that is a different program) and compares it with the goldens in
<test folder>/<test module>/<test name>/, the suite's own format (keras_parity/golden/):
a float64 reference computed by the suite's NumPy layers when they cover the model, else the
other backends' snapshots (labelled cross-backend), and this backend's own snapshot.
Missing goldens are created and the test fails once, as pytest-regressions does;
`--parity-regen` (or pytest-regressions' `--force-regen`) rewrites them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from keras_parity import golden
from keras_parity.judge.compare import CellResult, compare
from keras_parity.judge.crossref import cross_compare
from keras_parity.registry import usermodel
from keras_parity.registry.spec import Tol
from keras_parity.run import envinfo, knobs, machine
from keras_parity.run.weights import checksum, config_hash, generate_weights

CASE = "inference"


def pytest_addoption(parser):
    parser.getgroup("keras-parity").addoption(
        "--parity-regen",
        action="store_true",
        default=False,
        help="rewrite the goldens of keras_parity.check(): the float64 reference and this backend's snapshot",
    )


@pytest.fixture
def keras_parity(request) -> ParityCheck:
    """check(model, inputs) against goldens whose path derives from this test's identity."""
    config = request.config
    regen = config.getoption("parity_regen") or bool(config.getoption("force_regen", default=False))
    return ParityCheck(Path(request.path), request.node.name, regen)


class ParityCheck:
    def __init__(self, test_file: Path, test_name: str, regen: bool):
        self.root = test_file.parent / test_file.stem
        self.name = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
        self.regen = regen
        self.calls = 0

    def seed_weights(self, model, seed: int = 0) -> None:
        """Set every weight from NumPy with a fixed seed: a model built in code starts from
        each backend's own initializer numbers otherwise, and could never match across backends."""
        # By position and kind ('kernel', 'gamma', ...), not by path: auto-generated layer
        # names depend on what else the process has built.
        specs = [(f"{i}/{v.path.rsplit('/', 1)[-1]}", tuple(v.shape)) for i, v in enumerate(model.weights)]
        model.set_weights(generate_weights(specs, seed, "seed_weights", generic=True))

    def check(self, model, inputs, *, name: str | None = None, rel_l2=None, atol=None, rtol=None) -> None:
        """Fail the test, with what differs by how much and where, unless `model` on `inputs`
        matches the goldens. `inputs`: one array, a list in input order or a dict by input name.
        Several checks in one test need a `name` each after the first (or get '-1', '-2')."""
        import keras

        backend = keras.backend.backend()
        knobs.after_import(backend, threads=False)  # TF32 off and deterministic kernels, as the goldens were made
        device, gpu = knobs.device_info(backend)
        platform = machine.platform_key(device, gpu, envinfo.isa_cap())
        key = name or (self.name if self.calls == 0 else f"{self.name}-{self.calls}")
        self.calls += 1
        try:
            graph = usermodel.graph_model(model, key)
            feed = _feed(inputs, graph, key)
        except usermodel.UserModelError as exc:
            pytest.fail(str(exc), pytrace=False)
        obtained = _outputs(graph, feed, backend)
        weights = {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in graph.weights}
        ref_file = golden.reference_path(key, self.root)
        snap_file = golden.snapshot_path(key, platform, backend, self.root)
        snapshot = {f"{CASE}/{p}/{k}": v for p, outs in obtained.items() for k, v in outs.items()}
        if self.regen or not ref_file.exists():
            kind = self._write_reference(key, graph, weights, feed)
            golden.write_npz(snap_file, snapshot)
            what = "regenerated" if self.regen else "created"
            pytest.fail(
                f"{what} the goldens of {key} ({kind} reference, {backend} snapshot) in {self.root / key}; "
                "check them in and rerun" + (" without --parity-regen" if self.regen else ""),
                pytrace=False,
            )
        meta = golden.read_json(ref_file.with_suffix(".json"))
        tol = Tol(
            rel_l2 or usermodel.USER_TOL.rel_l2, atol or usermodel.USER_TOL.atol, rtol or usermodel.USER_TOL.rtol, ""
        )
        cells = self._compare(key, obtained, meta, tol, backend, device, platform)
        for p in _provenance(key, meta, weights, feed):
            cells[0].fail(p)
        if not snap_file.exists():
            golden.write_npz(snap_file, snapshot)  # a backend's first run: its snapshot, from now on
        bad = [c for c in cells if c.status != "pass"]
        obtained_file = golden.obtained_path(key, backend, self.root)
        if not bad:
            obtained_file.unlink(missing_ok=True)
            return
        golden.write_npz(obtained_file, snapshot)
        pytest.fail(_report(key, backend, bad, obtained_file), pytrace=False)

    def _write_reference(self, key, graph, weights, feed) -> str:
        from keras_parity.reference import UnsupportedLayer, reference_gaps
        from keras_parity.reference import evaluate as reference_eval

        config = graph.get_config()
        gaps, ref = reference_gaps(config), {}
        if not gaps:
            try:
                res = reference_eval(config, weights, feed)
                ref = {f"{CASE}/{'output' if i == 0 else f'output:{i}'}": o for i, o in enumerate(res.outputs)}
            except UnsupportedLayer as exc:
                gaps = [str(exc)]
        kind = {"kind": "cross-backend", "missing": gaps} if gaps else {"kind": "float64"}
        meta = {
            "model": key,
            "reference": kind,
            "builders": {key: {"weights_sha256": _digest(weights), "config_sha256": config_hash(config)}},
            "inputs_sha256": {CASE: _digest(feed)},
        }
        golden.write_npz(golden.reference_path(key, self.root), ref)
        golden.write_json(golden.reference_path(key, self.root).with_suffix(".json"), meta)
        return "float64" if not gaps else "cross-backend"

    def _compare(self, key, obtained, meta, tol, backend, device, platform) -> list[CellResult]:
        ref = golden.read_npz(golden.reference_path(key, self.root))
        mine = _snapshot(self.root, key, platform, backend)
        gaps = meta.get("reference", {}).get("missing")
        cells = []
        for path, outs in obtained.items():
            cell = CellResult(key, CASE, backend, device, path)
            snap = None if mine is None else golden.part(mine, CASE, path)
            if gaps:
                others = {}
                for other in ("tensorflow", "jax", "torch"):
                    theirs = _snapshot(self.root, key, platform, other) if other != backend else None
                    if theirs:
                        others[other] = golden.part(theirs, CASE, golden.children(theirs, CASE)[-1])
                cross_compare(cell, outs, others, snap, tol, gaps)
            else:
                reference = golden.part(ref, CASE)
                compare(cell, outs, reference, tol, snapshot=snap)
            cells.append(cell)
        return cells


def _snapshot(root: Path, key: str, platform: str, backend: str) -> dict | None:
    path = golden.snapshot_path(key, platform, backend, root)
    others = sorted((root / key / "snapshots").glob(f"*/{backend}.npz"))
    if path.exists():
        return golden.read_npz(path)
    return golden.read_npz(others[0]) if others else None


def _feed(inputs, graph, key: str) -> dict[str, np.ndarray]:
    specs = usermodel.input_specs(graph)
    names = [n for n, _, _ in specs]
    if isinstance(inputs, dict):
        given = dict(inputs)
    elif isinstance(inputs, (list, tuple)):
        given = dict(zip(names, inputs)) if len(inputs) == len(names) else {f"#{i}": x for i, x in enumerate(inputs)}
    else:
        given = {names[0]: inputs} if len(names) == 1 else {"#0": inputs}
    checked = usermodel.check_feed({k: np.asarray(v) for k, v in given.items()}, specs, "inputs", key)
    return {n: checked[n] for n in names}


def _outputs(graph, feed: dict, backend: str) -> dict[str, dict[str, np.ndarray]]:
    """{path: {output: array}} for the paths the suite's runner has on this backend."""
    from keras_parity.run.modelio import PATHS, input_names, output_dict

    xs = [feed[n] for n in input_names(graph)]
    x = xs if isinstance(graph.input, (list, tuple)) else xs[0]
    calls = {"predict": lambda: graph.predict_on_batch(x), "eager": lambda: graph(x, training=False)}
    return {path: output_dict(calls[path]()) for path in PATHS[backend]}


def _digest(arrays: dict) -> str:
    """Of the values in model order: names may be auto-generated ('dense_3'), which depend on
    what else the process built before."""
    return checksum(list(arrays.values()))


def _provenance(key: str, meta: dict, weights: dict, feed: dict) -> list[str]:
    problems = []
    if meta.get("builders", {}).get(key, {}).get("weights_sha256") != _digest(weights):
        problems.append(
            f"weights of '{key}' are not the ones the goldens were made from; if the change is intended, "
            "rerun with --parity-regen (a model built in code: keras_parity.seed_weights(model) first)"
        )
    if meta.get("inputs_sha256", {}).get(CASE) != _digest(feed):
        problems.append(f"inputs of '{key}' changed since the goldens were made; rerun with --parity-regen")
    return problems


def _report(key: str, backend: str, bad: list[CellResult], obtained_file: Path) -> str:
    lines = [f"{key} on {backend} differs from its goldens (obtained outputs written to {obtained_file}):"]
    for c in bad:
        lines += [f"  {c.label}: {f.message}" for f in c.findings if not f.note]
        for out, m in c.outputs.items():
            lines.append(
                f"    {out}: rel L2 {m.rel_l2:.2e} (tol {c.tol.rel_l2:.0e}), max abs {m.max_abs:.2e}, "
                f"max rel {m.max_rel:.2e}, worst at {m.worst_index}"
            )
        lines += [f"  {c.label}: {f.message}" for f in c.findings if f.note]
    return "\n".join(lines)

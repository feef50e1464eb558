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
`--parity-regen` (or `--force-regen`, pytest-regressions' name, with or without it installed)
rewrites them: `pytest --parity-regen; git add tests/` (`;`: that run fails). With `CI` set in the
environment (or `--parity-strict`) nothing is written: a missing reference or snapshot fails
with the command that records it. A mismatch writes the obtained outputs under the test's
tmp_path. The determinism settings check() switches on are put back after the test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from keras_parity import golden
from keras_parity.judge.compare import CellResult
from keras_parity.judge.evaluate import judge_backend
from keras_parity.judge.goldens import read_goldens
from keras_parity.registry import userload, usermodel
from keras_parity.registry.spec import Tol
from keras_parity.run import envinfo, knobs
from keras_parity.run.modelio import PATHS, input_names, output_dict, set_weights
from keras_parity.run.record import BackendRun, BuilderRecord, ModelRecord, Provenance
from keras_parity.run.varpaths import variable_paths, weights_by_path
from keras_parity.run.weights import checksum, config_hash, depthwise_fan_ins, generate_weights

CASE = "inference"


def pytest_addoption(parser):
    if importlib.util.find_spec("pytest_regressions") is None:  # else its own option, honoured the same
        parser.getgroup("keras-parity").addoption(
            "--force-regen", action="store_true", default=False, help="the same as --parity-regen"
        )
    parser.getgroup("keras-parity").addoption(
        "--parity-regen",
        action="store_true",
        default=False,
        help="rewrite the goldens of keras_parity.check(): the float64 reference and this backend's snapshot",
    )
    parser.getgroup("keras-parity").addoption(
        "--parity-strict",
        action="store_true",
        default=False,
        help="fail on a missing golden of keras_parity.check() instead of writing it (the default with CI set)",
    )


def strict(config) -> bool:
    """CI's mode: a golden that is missing fails the test, naming the command that records it,
    so that nothing CI writes goes unchecked."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return bool(config.getoption("parity_strict")) or ci


@pytest.fixture
def keras_parity(request, tmp_path):
    """check(model, inputs) against goldens whose path derives from this test's identity."""
    config = request.config
    regen = config.getoption("parity_regen") or bool(config.getoption("force_regen", default=False))
    check = ParityCheck(Path(request.path), request.node.name, regen, strict(config), tmp_path, request.node.nodeid)
    yield check
    check.restore()


class ParityCheck:
    def __init__(self, test_file: Path, test_name: str, regen: bool, strict: bool, tmp_path: Path, nodeid: str):
        self.root = test_file.parent / test_file.stem
        self.name = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
        self.regen, self.strict = regen, strict
        self.tmp_path, self.nodeid = tmp_path, nodeid
        self.calls = 0
        self.saved: tuple[str, dict] | None = None  # the settings as the test found them

    def restore(self) -> None:
        """Put back the settings check() changed, for the process's other tests."""
        if self.saved is not None:
            knobs.restore(*self.saved)
            self.saved = None

    def record_command(self, backend: str) -> str:
        return f"KERAS_BACKEND={backend} pytest --parity-regen {shlex.quote(self.nodeid)}"

    def seed_weights(self, model, seed: int = 0) -> None:
        """Set every weight from NumPy with a fixed seed: a model built in code starts from
        each backend's own initializer numbers otherwise, and could never match across backends."""
        # By position and kind ('kernel', 'gamma', ...), not by path: auto-generated layer
        # names depend on what else the process has built.
        specs = [(f"{i}/{v.path.rsplit('/', 1)[-1]}", tuple(v.shape)) for i, v in enumerate(model.weights)]
        depthwise = depthwise_fan_ins(model)
        paths = variable_paths(model)
        fan_in = {p: depthwise[q] for (p, _), q in zip(specs, paths) if q in depthwise}
        set_weights(model, generate_weights(specs, seed, "seed_weights", generic=True, fan_in=fan_in))

    def check(self, model, inputs, *, name: str | None = None, rel_l2=None, atol=None, rtol=None) -> None:
        """Fail the test, with what differs by how much and where, unless `model` on `inputs`
        matches the goldens. `inputs`: one array, a list in input order or a dict by input name.
        Several checks in one test need a `name` each after the first (or get '-1', '-2')."""
        import keras

        backend = keras.backend.backend()
        if self.saved is None:
            self.saved = (backend, knobs.current(backend))
        knobs.after_import(backend, threads=False)  # TF32 off and deterministic kernels, as the goldens were made
        key = name or (self.name if self.calls == 0 else f"{self.name}-{self.calls}")
        self.calls += 1
        try:
            graph = userload.graph_model(model, key)
            feed = _feed(inputs, graph, key)
        except usermodel.UserModelError as exc:
            pytest.fail(str(exc), pytrace=False)
        run = _produce(graph, feed, key, backend)
        snapshot, platform = golden.part(run.arrays, key), run.platform
        assert platform is not None, "a run made in this process has its provenance"
        snap_file = golden.snapshot_path(key, platform, backend, self.root)
        if not self.regen and self.strict and not golden.reference_path(key, self.root).exists():
            pytest.fail(
                f"{key} has no goldens in {self.root / key}, and with CI set (or --parity-strict) none are "
                f"written; record them with `{self.record_command(backend)}` and check them in",
                pytrace=False,
            )
        if self.regen or not golden.reference_path(key, self.root).exists():
            kind = self._write_reference(key, graph, run)
            golden.write_npz(snap_file, snapshot)
            what = "regenerated" if self.regen else "created"
            pytest.fail(
                f"{what} the goldens of {key} ({kind} reference, {backend} snapshot) in {self.root / key}; "
                "check them in and rerun" + (" without --parity-regen" if self.regen else ""),
                pytrace=False,
            )
        # The judge of `parity`, with this test's tolerance and the other backends' snapshots
        # standing in for their runs where the model is judged across backends.
        spec = usermodel.spec_of_test(key, _tolerance(rel_l2, atol, rtol))
        g = read_goldens(key, self.root, spec, regen=REGEN_HINT)
        runs = {backend: run, **(_snapshot_runs(key, platform, backend, self.root) if g.gaps else {})}
        cells = judge_backend(g, backend, runs)
        bad = [c for c in cells if c.status != "pass"]
        if bad:
            obtained_file = golden.obtained_path(key, backend, self.tmp_path)
            golden.write_npz(obtained_file, snapshot)
            pytest.fail(_report(key, backend, bad, obtained_file), pytrace=False)
        if not snap_file.exists() and self.strict:
            pytest.fail(
                f"{key} passes on {backend} but has no {backend} snapshot for {platform} ({snap_file}), and with "
                f"CI set (or --parity-strict) none is written; record it with `{self.record_command(backend)}` "
                "and check it in",
                pytrace=False,
            )
        if not snap_file.exists():
            golden.write_npz(snap_file, snapshot)  # a backend's first passing run: its snapshot, from now on

    def _write_reference(self, key: str, graph, run: BackendRun) -> str:
        """The float64 reference of `parity`'s user models (or the cross-backend record), written
        by the golden writer; its JSON holds the checksums the judge checks provenance with."""
        from keras_parity.golden.regen import user_reference

        ref, kind = user_reference(key, {key: {"config": graph.get_config()}}, run.feeds, cases=[CASE])
        made = run.models[key]
        meta = {
            "model": key,
            "reference": kind,
            "builders": {key: made.builders[key].as_json()},
            "inputs_sha256": made.inputs_sha256,
        }
        golden.write_npz(golden.reference_path(key, self.root), ref)
        golden.write_json(golden.reference_path(key, self.root).with_suffix(".json"), meta)
        return kind["kind"]


REGEN_HINT = "--parity-regen (a model built in code: keras_parity.seed_weights(model) first)"


def _tolerance(rel_l2, atol, rtol) -> Tol:
    """The check's tolerance: what the test gives (0 included), else a user model's default."""
    default = usermodel.USER_TOL
    pick = lambda given, fallback: fallback if given is None else given  # noqa: E731
    return Tol(pick(rel_l2, default.rel_l2), pick(atol, default.atol), pick(rtol, default.rtol), "keras_parity.check")


def _produce(graph, feed: dict, key: str, backend: str) -> BackendRun:
    """This process's run of the model, the record a backend runner returns (keras_parity/run/record.py):
    arrays 'model/case/path/output', the model's checksums, the machine facts, its weights and
    inputs as feeds."""

    from keras_parity.run.defaults import layer_defaults

    xs = [feed[n] for n in input_names(graph)]
    x = xs if isinstance(graph.input, (list, tuple)) else xs[0]
    calls = {"predict": lambda: graph.predict_on_batch(x), "eager": lambda: graph(x, training=False)}
    weights = {p: np.asarray(w) for p, w in weights_by_path(graph).items()}
    arrays = {
        golden.key(key, CASE, path, out): value
        for path in PATHS[backend]
        for out, value in output_dict(calls[path]()).items()
    }
    builder = BuilderRecord(
        config_sha256=config_hash(graph.get_config()),
        weights_sha256=_digest(weights),
        defaults=layer_defaults(graph),  # the Keras defaults its layers lean on
    )
    feeds = {golden.key(key, "weights", p): w for p, w in weights.items()}
    feeds |= {golden.key(key, "inputs", CASE, n): v for n, v in feed.items()}
    return BackendRun(
        backend,
        arrays,
        feeds=feeds,
        provenance=Provenance(**envinfo.provenance(*knobs.device_info(backend))),
        models={key: ModelRecord({key: builder}, inputs_sha256={CASE: _digest(feed)})},
    )


def _snapshot_runs(key: str, platform: str, mine: str, root: Path) -> dict[str, BackendRun]:
    """The other backends' snapshots (this platform's, else the first recorded) as their runs,
    for a model judged across backends: one path each, the last one recorded."""
    runs = {}
    for other in ("tensorflow", "jax", "torch"):
        path = golden.snapshot_path(key, platform, other, root)
        found = [path] if path.exists() else sorted((root / key / "snapshots").glob(f"*/{other}.npz"))
        if other != mine and found:
            theirs = golden.read_npz(found[0])
            last = golden.children(theirs, CASE)[-1]
            arrays = {golden.key(key, CASE, last, k): v for k, v in golden.part(theirs, CASE, last).items()}
            runs[other] = BackendRun(other, arrays, models={key: ModelRecord()})
    return runs


def _feed(inputs, graph, key: str) -> dict[str, np.ndarray]:
    specs = userload.input_specs(graph)
    names = [n for n, _, _ in specs]
    if isinstance(inputs, dict):
        given = dict(inputs)
    elif isinstance(inputs, (list, tuple)):
        given = dict(zip(names, inputs)) if len(inputs) == len(names) else {f"#{i}": x for i, x in enumerate(inputs)}
    else:
        given = {names[0]: inputs} if len(names) == 1 else {"#0": inputs}
    checked = userload.check_feed({k: np.asarray(v) for k, v in given.items()}, specs, "inputs", key)
    return {n: checked[n] for n in names}


def _digest(arrays: dict) -> str:
    """Of the values in model order: names may be auto-generated ('dense_3'), which depend on
    what else the process built before."""
    return checksum(list(arrays.values()))


def _report(key: str, backend: str, bad: list[CellResult], obtained_file: Path) -> str:
    lines = [f"{key} on {backend} differs from its goldens (obtained outputs written to {obtained_file}):"]
    for c in bad:
        lines += [f"  {c.label}: {f.line}" for f in c.findings if not f.note]
        tol = f" (tol {c.tol.rel_l2:.0e})" if c.tol else ""
        for out, m in c.outputs.items():
            lines.append(
                f"    {out}: rel L2 {m.rel_l2:.2e}{tol}, max abs {m.max_abs:.2e}, "
                f"max rel {m.max_rel:.2e}, worst at {m.worst_index}"
            )
        lines += [f"  {c.label}: {f.line}" for f in c.findings if f.note]
    return "\n".join(lines)

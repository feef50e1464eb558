"""The stages combined in this process: the pipeline and `cli.main(["parity", ...])` on recorded
runs (tests/data/master/raw) handed back by a fake launcher in place of the backend processes."""

import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from keras_parity import cli
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.pipeline import Plan, parity
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import launch
from keras_parity.run.envinfo import ISA_CAP_ENV
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import load_run
from keras_parity.run.settings import TIME_LIMIT_ENV, Settings

MASTER = Path(__file__).parent / "data" / "master"
MODELS = ["linear", "bn_mlp", "lstm"]


class RecordedLaunch:
    """A launcher returning the recorded runs of the backends asked for, remembering each call."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, backends, models, out, asked, **kw):
        self.calls.append({"backends": list(backends), "models": list(models), "out": out, "flags": asked, **kw})
        twins = kw.get("twins") or []
        return {b: load_run(MASTER / "raw", b, twin=b in twins) for b in [*backends, *twins]}


def _plan(tmp_path, launcher, **changes) -> Plan:
    goldens = tmp_path / "golden"
    if not goldens.exists():
        shutil.copytree(MASTER / "golden", goldens)  # the judge writes beside the goldens
    fields = dict(
        backends=list(BACKENDS), models=MODELS, registry=builtin_registry(), out=tmp_path / "out",
        golden_dir=goldens, launcher=launcher,
    )  # fmt: skip
    return Plan(**{**fields, **changes})


def _console() -> Console:
    return Console(record=True, width=200, color_system=None, force_terminal=False)


def test_the_pipeline_judges_diagnoses_and_reports_recorded_runs(tmp_path):
    launcher = RecordedLaunch()
    cells = parity(_plan(tmp_path, launcher), _console())
    assert from_verdicts(c.status for c in cells) == Exit.REGRESSION  # jax's bn_mlp was planted off
    written = json.loads((tmp_path / "out" / "parity.json").read_text())
    assert {(c["model"], c["backend"], c["status"]) for c in written["cells"]} >= {("bn_mlp", "jax", "fail")}
    assert (tmp_path / "out" / "parity.xml").exists() and (tmp_path / "out" / "parity-table.txt").exists()
    assert launcher.calls[0]["out"] == tmp_path / "out" / "raw"
    failing = [c for c in cells if c.values_failed and c.case != "*"]
    assert failing and all(any(f.kind == "localize" for f in c.findings) for c in failing)


def test_a_diagnosis_reruns_the_failing_cells_backends_and_models_with_its_flags(tmp_path):
    launcher = RecordedLaunch()
    cells = parity(_plan(tmp_path, launcher), _console())
    failing = [c for c in cells if c.values_failed and c.case != "*" and c.backend in BACKENDS]
    want_backends, want_models = sorted({c.backend for c in failing}), sorted({c.model for c in failing})
    by_out = {call["out"].name: call for call in launcher.calls}
    assert set(by_out) == {"raw", "layers", "float64"}
    for name, dtype in (("layers", "float32"), ("float64", "float64")):
        call = by_out[name]
        assert (call["backends"], call["models"]) == (want_backends, want_models), name
        assert call["flags"].layers and call["flags"].dtype == dtype and not call["flags"].twice, name
    assert (want_backends, want_models) != (sorted(BACKENDS), sorted(MODELS))  # a subset, not everything


def test_policies_and_determinism_rerun_the_whole_plan_through_the_service(tmp_path):
    launcher = RecordedLaunch()
    plan = _plan(tmp_path, launcher, flags=RunFlags(twice=True), policies=("mixed_bfloat16",))
    cells = parity(plan, _console())
    by_out = {call["out"].name: call for call in launcher.calls}
    assert by_out["mixed_bfloat16"]["flags"] == RunFlags(dtype="mixed_bfloat16")
    assert by_out["again"]["flags"] == RunFlags(twice=False)
    assert by_out["again"]["backends"] == list(BACKENDS) and by_out["again"]["models"] == MODELS
    assert any(c.policy == "mixed_bfloat16" for c in cells)
    assert all(c.determinism for c in cells if c.case != "*" and c.policy == "float32" and not c.variant)


def test_the_settings_reach_every_call_of_the_launcher(tmp_path):
    launcher = RecordedLaunch()
    settings = Settings(time_limit=12.0, isa_cap="avx2")
    parity(_plan(tmp_path, launcher, settings=settings), _console())
    assert len(launcher.calls) == 3 and all(call["settings"] == settings for call in launcher.calls)


class _Hung:
    """A backend process that never ends on its own."""

    returncode = None

    def poll(self):
        return None

    def kill(self):
        self.returncode = -9


def test_the_time_limit_and_the_isa_cap_reach_the_child_not_this_process(tmp_path, monkeypatch):
    monkeypatch.delenv(ISA_CAP_ENV, raising=False)
    monkeypatch.delenv(TIME_LIMIT_ENV, raising=False)
    started = []

    def popen(cmd, env, **kw):
        started.append(env)
        return _Hung()

    monkeypatch.setattr(launch.envs, "ensure", lambda b, **kw: Path("/usr/bin/python3"))
    monkeypatch.setattr(launch, "GroupProcess", popen)  # subprocess.Popen in a process group of its own
    before = dict(os.environ)
    runs = launch.run_backends(
        ["jax"], ["linear"], tmp_path, registry=builtin_registry(), settings=Settings(0.2, "avx2"), log=lambda *a: 0
    )
    assert started[0][ISA_CAP_ENV] == "avx2"
    assert "did not finish within 0 s" in runs["jax"].error
    assert dict(os.environ) == before


def test_the_users_environment_stays_the_default(monkeypatch):
    monkeypatch.setenv(TIME_LIMIT_ENV, "7")
    monkeypatch.setenv(ISA_CAP_ENV, "avx512_core")
    assert Settings().seconds() == 7.0 and Settings(time_limit=3.0).seconds() == 3.0
    assert Settings().child_env() == {ISA_CAP_ENV: "avx512_core"}
    assert Settings(isa_cap="avx2").child_env() == {ISA_CAP_ENV: "avx2"}
    monkeypatch.delenv(ISA_CAP_ENV)
    assert Settings().child_env() == {} and launch.child_env(Settings(isa_cap="avx2"))[ISA_CAP_ENV] == "avx2"


def test_a_container_gets_the_isa_cap_in_its_environment(monkeypatch, tmp_path):
    from keras_parity.run import container

    monkeypatch.delenv(ISA_CAP_ENV, raising=False)
    seen = {}
    monkeypatch.setattr(container, "ContainerRun", lambda b, out, args, env, device, mounts: seen.update(env) or 0)
    launch._start_container("jax", tmp_path, [], "cpu", [], Settings(isa_cap="avx2"))
    assert seen[ISA_CAP_ENV] == "avx2" and ISA_CAP_ENV not in os.environ


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "amd64"), reason="--isa-cap caps x86 kernels")
def test_the_parity_command_in_process(tmp_path, monkeypatch):
    monkeypatch.delenv(ISA_CAP_ENV, raising=False)
    monkeypatch.delenv(TIME_LIMIT_ENV, raising=False)
    launcher = RecordedLaunch()
    monkeypatch.setattr(launch, "run_backends", launcher)
    shutil.copytree(MASTER / "golden", tmp_path / "golden")
    models = [a for m in MODELS for a in ("--model", m)]
    argv = ["parity", *models, "--golden-dir", str(tmp_path / "golden"), "--out", str(tmp_path / "out")]
    code = cli.main([*argv, "--time-limit", "30", "--isa-cap", "avx2"])
    assert code == Exit.REGRESSION
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["cells"]
    assert launcher.calls[0]["settings"] == Settings(30.0, "avx2")
    assert TIME_LIMIT_ENV not in os.environ and ISA_CAP_ENV not in os.environ
    assert cli.main([*argv, "--time-limit", "0"]) == Exit.USAGE


def test_bench_times_whole_pipelines_and_prints_every_step(tmp_path, monkeypatch):
    """`bench` on recorded runs: each parity run is the whole pipeline (run, judge, diagnose,
    report), timed step by step, with the backend processes' phases and the targets' verdicts."""
    from types import SimpleNamespace

    from keras_parity.bench import STEPS, bench

    launcher = RecordedLaunch()
    monkeypatch.setattr(launch, "run_backends", launcher)
    goldens = _plan(tmp_path, launcher).golden_dir
    selection = SimpleNamespace(models=MODELS, registry=builtin_registry(), golden_dir=goldens)
    console = _console()
    code = bench(SimpleNamespace(backend=None, runs=2, docker=False, twins=None), selection, console)
    text = console.export_text()
    assert code == Exit.OK
    assert "per backend process" in text and "layer sketches" in text
    steps = text[text.index("parity pipeline, each run") :]
    assert all(step in steps for step in STEPS)
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in steps.splitlines() if line.startswith("│")]
    rows = [r for r in rows if r[0] in ("1", "2")]
    assert [r[0] for r in rows] == ["1", "2"]
    for row in rows:  # every step timed, the whole at least their sum
        seconds = [float(v) for v in row[1:]]
        assert seconds[0] > 0 and seconds[-1] >= sum(seconds[:-1]) - 0.02, row
    assert "(min " in text and "2 runs)" in text and "ratio: " in text and "peak RSS of a backend process" in text
    # two pipelines, each a main run and the diagnoses' reruns of bn_mlp's planted jax cell, and the bench's own runs
    mains = [c for c in launcher.calls if c["out"].name == "raw"]
    assert len(mains) == 2 and all((c["out"].parent / "parity.json").exists() for c in mains)

"""End to end: real backend processes, the goldens in golden/, and every bad input of the issue.

One real parity run (all models, all three backends) feeds most tests; each bad-input test
then damages a copy of the goldens or of the outputs and checks the verdict and message.
"""

import dataclasses
import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, copy_project

from keras_parity import golden
from keras_parity.golden.regen import regenerate
from keras_parity.judge.evaluate import evaluate, obtained_outputs
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import envs
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import run_backends

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent
MODELS = list(BUILTIN)
pytestmark = pytest.mark.slow


@pytest.fixture
def golden_copy(tmp_path):
    dst = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN, dst, ignore=shutil.ignore_patterns("*.obtained.npz"))
    return dst


def by_model(cells, model):
    return [c for c in cells if c.model == model]


def test_full_parity_run_passes_every_case_on_every_backend(parity):
    proc, out, runs = parity
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "parity.json").read_text())
    seen = {(c["model"], c["case"], c["backend"]) for c in report["cells"] if c["status"] == "pass"}
    want = {(m, c.name, b) for m, s in BUILTIN.items() for c in s.cases for b in BACKENDS}
    assert want <= seen
    # The compiled path and, where it differs, the eager call are separate cells.
    paths = {(c["backend"], c["path"]) for c in report["cells"]}
    assert {
        ("tensorflow", "predict"),
        ("tensorflow", "eager"),
        ("jax", "predict"),
        ("jax", "eager"),
        ("torch", "predict"),
    } <= paths
    for b in BACKENDS:
        meta = report["runs"][b]
        assert meta["versions"]["keras"] and meta["git_commit"] and meta["cpu_model"] and meta["knobs"]
    assert report["seeds"] == {m: s.seed for m, s in BUILTIN.items()}
    assert runs["jax"].knobs["default_matmul_precision"] == "highest"
    assert runs["tensorflow"].knobs["op_determinism"] is True
    assert runs["torch"].knobs["deterministic_algorithms"] is True
    xml = (out / "parity.xml").read_text()
    assert "<failure" not in xml and "<error" not in xml and "resnet50/logits[predict]" in xml


def test_resnet50_logits_are_sane(parity):
    _, _, runs = parity
    for run in runs.values():
        logits = run.arrays["resnet50/logits/predict/output"]
        assert logits.shape[0] >= 2 and np.isfinite(logits).all()
        assert 0.5 < logits.std() < 20 and np.abs(logits).max() < 100  # not saturated
        assert len(np.unique(logits)) > 0.9 * logits.size  # not all equal


def test_unknown_names_get_one_line_errors():
    for args, what in ((("--model", "nope"), "model 'nope'"), (("--backend", "mxnet"), "backend 'mxnet'")):
        proc = cli("parity", *args)
        assert proc.returncode != 0
        assert proc.stderr.strip().count("\n") == 0 and what in proc.stderr and "choose from" in proc.stderr


def test_missing_golden_is_an_error_for_that_model_only(parity, golden_copy):
    _, _, runs = parity
    (golden_copy / "lstm" / "reference.npz").unlink()
    cells = evaluate(runs, MODELS, BUILTIN, golden_copy)
    lstm = by_model(cells, "lstm")
    assert len(lstm) == 3 and all(c.status == "error" for c in lstm)
    # The other files of the set are there: a set half-written, named with the command that finishes it.
    assert "reference.npz missing beside reference.json" in lstm[0].problems[0]
    assert lstm[0].problems[0].endswith(f"finish them with `nox -s golden -- --model lstm --golden-dir {golden_copy}`")
    assert all(c.status == "pass" for c in cells if c.model != "lstm")


def test_truncated_golden_is_reported_as_corrupt(parity, golden_copy):
    _, _, runs = parity
    p = golden_copy / "cnn" / "reference.npz"
    p.write_bytes(p.read_bytes()[:200])
    cells = by_model(evaluate(runs, ["cnn"], BUILTIN, golden_copy), "cnn")
    assert all(c.status == "error" and "corrupt" in c.problems[0] for c in cells)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a: {f"{k}_renamed": v for k, v in a.items()}, "output keys differ"),
        (lambda a: {k: v[:1] for k, v in a.items()}, "shape"),
        (lambda a: {k: v.astype(np.float32) for k, v in a.items()}, "not float64"),
    ],
    ids=["wrong-keys", "wrong-shape", "wrong-dtype"],
)
def test_damaged_golden_contents_fail_with_the_reason(parity, golden_copy, damage, message):
    _, _, runs = parity
    p = golden_copy / "linear" / "reference.npz"
    golden.write_npz(p, damage(golden.read_npz(p)))
    cells = by_model(evaluate(runs, ["linear"], BUILTIN, golden_copy), "linear")
    assert cells and all(c.status == "fail" for c in cells)
    assert all(any(message in p for p in c.problems) for c in cells)


def test_nan_output_fails_and_writes_obtained_beside_the_golden(parity, golden_copy):
    _, _, runs = parity
    jax = runs["jax"]
    arrays = dict(jax.arrays)
    bad = arrays["lstm/lstm/predict/output"].copy()
    bad[0, 0] = np.nan
    arrays["lstm/lstm/predict/output"] = bad
    damaged = {**runs, "jax": dataclasses.replace(jax, arrays=arrays)}
    cells = evaluate(damaged, ["lstm"], BUILTIN, golden_copy)
    failed = [c for c in cells if c.status != "pass"]
    assert [(c.backend, c.path) for c in failed] == [("jax", "predict")]
    assert "1 NaN" in failed[0].problems[0]
    golden.write_obtained(obtained_outputs(damaged, cells, BUILTIN, golden_copy))  # as the parity pipeline does
    obtained = golden.read_npz(golden.obtained_path("lstm", "jax", golden_copy))
    assert np.isnan(obtained["lstm/predict/output"][0, 0])
    assert golden.read_npz(golden_copy / "lstm" / "reference.npz")  # the golden itself is untouched


def test_backend_whose_import_fails_is_reported_and_others_run(tmp_path):
    # This test environment has no jax: pointing the jax runner at it makes its import fail.
    runs = run_backends(
        ["jax", "torch"],
        ["linear"],
        tmp_path,
        python={"jax": Path(sys.executable)},
        registry=BUILTIN,
        log=lambda *a: None,
    )
    assert runs["jax"].error and "import failed" in runs["jax"].error and "jax" in runs["jax"].error
    cells = evaluate(runs, ["linear"], BUILTIN)
    assert [c.status for c in cells if c.backend == "jax"] == ["error"]
    assert all(c.status == "pass" for c in cells if c.backend == "torch")


def test_golden_twice_in_a_row_is_byte_identical(golden_copy, tmp_path):
    """`nox -s golden` twice leaves git clean: same numbers, same bytes, nothing rewritten. The
    second run leaves ResNet50 out: the same writer, and most of the test's time."""
    first_run = cli("golden", "--golden-dir", str(golden_copy), "--out", str(tmp_path / "a"))
    assert first_run.returncode == 0, first_run.stdout[-2000:] + first_run.stderr[-2000:]
    first = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in golden_copy.rglob("*") if p.is_file()}
    small = [a for m in MODELS if m != "resnet50" for a in ("--model", m)]
    second_run = cli("golden", *small, "--golden-dir", str(golden_copy), "--out", str(tmp_path / "b"))
    assert second_run.returncode == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in golden_copy.rglob("*") if p.is_file()} == first
    # No change lines; on a CPU whose BLAS differs from the goldens' (OPENBLAS_CORETYPE=Haswell),
    # a line that the float64 files agree to rounding and were kept (golden/settle.py).
    changes = [ln for ln in second_run.stdout.splitlines() if ln.startswith("  ") and "kept as they were" not in ln]
    assert changes == []
    for model in MODELS:  # the float64 reference does not depend on the machine's float32 path
        new = golden.read_npz(golden_copy / model / "reference.npz")
        old = golden.read_npz(golden.reference_path(model))
        assert new.keys() == old.keys()
        assert all(np.allclose(new[k], old[k], rtol=1e-12, atol=1e-12) for k in new)


def test_failed_or_interrupted_golden_leaves_previous_goldens(parity, golden_copy, monkeypatch):
    _, _, runs = parity
    before = {p: p.read_bytes() for p in golden_copy.rglob("*") if p.is_file()}
    # A failure: these runs carry no model configs, so no reference can be computed.
    assert regenerate(runs, MODELS, BUILTIN, golden_copy, log=lambda *a: None) == len(MODELS)
    assert {p: p.read_bytes() for p in golden_copy.rglob("*") if p.is_file()} == before
    # An interruption while the third model's reference is computed: nothing is written.
    calls = []

    def interrupt(model, builders, *configs):
        calls.append(model)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {}, {}

    monkeypatch.setattr("keras_parity.golden.regen.reference_outputs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        regenerate(runs, MODELS, BUILTIN, golden_copy, log=lambda *a: None)
    assert {p: p.read_bytes() for p in golden_copy.rglob("*") if p.is_file()} == before


def test_planted_batchnorm_epsilon_change_fails_bn_mlp_on_every_backend(tmp_path):
    project = tmp_path / "project"
    copy_project(project)
    src = project / "models" / "bn_mlp.py"
    text = src.read_text()
    assert "epsilon=1e-3" in text
    src.write_text(text.replace("epsilon=1e-3", "epsilon=1e-2"))
    proc = cli("parity", "--model", "bn_mlp", "--out", str(tmp_path / "out"), cwd=project)
    assert proc.returncode == 1
    cells = json.loads((tmp_path / "out" / "parity.json").read_text())["cells"]
    failed_backends = {c["backend"] for c in cells if c["status"] == "fail" and c["model"] == "bn_mlp"}
    assert failed_backends == set(BACKENDS)
    for b in BACKENDS:  # one line per backend, whatever the number of paths it failed on
        (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"FAIL bn_mlp/inference ({b}/cpu/")]
        assert "predict" in line.split("): ")[0] and "): output: relative L2 error" in line
    assert "model definition of 'bn_mlp' changed" in proc.stdout


def test_adding_a_model_as_the_readme_says(tmp_path):
    """The README's two snippets (one file, one registry entry) give a model that runs."""
    project = tmp_path / "project"
    copy_project(project)
    blocks = [b.split("```", 1)[0] for b in (ROOT / "README.md").read_text().split("```python\n")[1:]]
    model_src = next(b for b in blocks if b.lstrip().startswith("# models/tanh_mlp.py"))
    entry = next(b for b in blocks if b.lstrip().startswith('"tanh_mlp": ModelSpec('))
    (project / "models" / "tanh_mlp.py").write_text(textwrap.dedent(model_src))
    registry = project / "models" / "registry.py"
    text = registry.read_text()
    cut = text.rindex("}")
    registry.write_text(text[:cut] + textwrap.indent(textwrap.dedent(entry), "    ") + text[cut:])
    out = tmp_path / "out"
    made = cli("golden", "--model", "tanh_mlp", "--out", str(out), cwd=project)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    assert (project / "golden" / "tanh_mlp" / "reference.npz").exists()
    checked = cli("parity", "--model", "tanh_mlp", "--out", str(out), cwd=project)
    assert checked.returncode == 0, checked.stdout[-2000:]
    cells = json.loads((out / "parity.json").read_text())["cells"]
    assert {c["backend"] for c in cells if c["status"] == "pass"} == set(BACKENDS)


def test_report_merges_result_directories_of_two_machines(parity, tmp_path):
    _, out, _ = parity
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    shutil.copytree(out, a)
    shutil.copytree(out, b)
    merged = cli("report", str(a), str(b), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    cells = json.loads((tmp_path / "merged" / "parity.json").read_text())["cells"]
    single = json.loads((out / "parity.json").read_text())["cells"]
    assert len(cells) == 2 * len(single)
    assert {c["device"] for c in cells} == {"cpu (machine-a)", "cpu (machine-b)"}
    # A failing cell on one machine fails the merged report.
    doc = json.loads((b / "parity.json").read_text())
    doc["cells"][0]["status"] = "fail"
    doc["cells"][0]["problems"] = ["output: relative L2 error 1e-02 > 1e-05"]
    (b / "parity.json").write_text(json.dumps(doc))
    failed = cli("report", str(a), str(b), "--out", str(tmp_path / "merged2"))
    assert failed.returncode == 1 and "(machine-b)" in failed.stdout
    missing = cli("report", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "parity.json is missing" in missing.stderr
    assert missing.stderr.strip().count("\n") == 0


def test_gpu_asked_for_where_none_exists_is_reported(tmp_path):
    python = {"torch": envs.ensure("torch")}  # the CPU environment: no GPU to be seen
    runs = run_backends(
        ["torch"], ["linear"], tmp_path, RunFlags(device="cuda"), python=python, registry=BUILTIN, log=lambda *a: None
    )
    assert runs["torch"].error == (
        "a GPU was asked for (--device cuda) but torch sees none; run it on a GPU host or with --device cpu"
    )
    assert evaluate(runs, ["linear"], BUILTIN)[0].status == "error"

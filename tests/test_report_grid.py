"""The default report: a grid that fits 100 columns, then the failures one line each; the full
table with -v and on disk; the summary as Markdown on GitHub Actions."""

from dataclasses import replace

from helpers import cli
from rich.console import Console

from keras_parity import __version__, report
from keras_parity.exitcodes import Exit, from_verdicts
from keras_parity.judge.compare import CellResult, Finding, OutputMetrics
from keras_parity.registry.spec import Tol
from keras_parity.report.merge import merge

TOL = Tol(rel_l2=1e-6, atol=1e-6, rtol=0.0, why="10x the float32 noise")


def _cell(model, case, backend, path, rel_l2, status="pass", findings=(), **kw) -> CellResult:
    outputs = {"output": OutputMetrics(max_abs=rel_l2, max_rel=rel_l2, rel_l2=rel_l2, nan=0, inf=0)}
    return CellResult(model, case, backend, "cpu", path, status, tuple(findings), outputs, tol=TOL, **kw)


def _cells() -> list[CellResult]:
    fix = "accept it on purpose with `nox -s golden`"
    bad = Finding("compare", "output: relative L2 error 2.50e-06 > 1e-06", fix=fix)
    cells = []
    for b in ("tensorflow", "jax", "torch"):
        for path in ("predict", "eager"):
            cells.append(_cell("linear", "dense_nobias", b, path, 3e-8))
            worse = b == "jax" and path == "eager"
            cells.append(_cell("lstm", "lstm", b, path, 2.5e-6 if worse else 4e-8, *(("fail", [bad]) if worse else ())))
    crashed = Finding("backend", "torch-native failed on lstm: RuntimeError", fix="see its log in results/raw")
    cells.append(_cell("lstm", "lstm", "torch-native", "native", 0.0, "error", [crashed]))
    cells[0] = replace(cells[0], findings=(Finding("config", "model definition of 'linear' changed", note=True),))
    return cells


def _render(cells, verbose=False) -> str:
    # the full table is ~170 wide: as in a CI log, where the command's console is 200 wide
    console = Console(width=200 if verbose else 100, record=True, color_system=None)
    report.print_report(cells, console, verbose=verbose)
    return console.export_text()


def test_the_grid_fits_100_columns_with_multiples_and_verdicts():
    text = _render(_cells())
    grid = text[: text.index("FAIL lstm")]
    assert max(len(line) for line in grid.splitlines()) <= 100
    header = next(line for line in grid.splitlines() if "model/case" in line)
    assert [h.strip() for h in header.split("┃")[2:-1]] == ["tensorflow", "jax", "torch", "torch-native"]
    row = next(line for line in grid.splitlines() if "lstm/lstm" in line)
    # jax: the worst of predict (0.04x) and eager (2.5x, failed); the twin errored
    assert "0.04x" in row and "FAIL 2.50x" in row and "ERROR" in row
    linear = next(line for line in grid.splitlines() if "linear/dense_nobias" in line)
    assert linear.count("0.03x") == 3 and linear.rstrip("│ ").endswith("-")  # no twin ran it
    assert "worst path of each backend; - not run" in grid


def test_failures_are_one_line_each_with_their_fix():
    lines = _render(_cells()).splitlines()
    fails = [line for line in lines if line.startswith(("FAIL ", "ERROR "))]
    assert fails == [
        "FAIL lstm/lstm (jax/cpu/eager): output: relative L2 error 2.50e-06 > 1e-06; "
        "accept it on purpose with `nox -s golden`",
        "ERROR lstm/lstm (torch-native/cpu/native): torch-native failed on lstm: RuntimeError; "
        "see its log in results/raw",
    ]
    assert "note linear/dense_nobias (tensorflow/cpu/predict): model definition of 'linear' changed" in lines
    assert lines[-1] == "13 cells: 11 passed, 1 failed, 1 errors"


def test_one_problem_on_several_paths_is_one_line_with_the_worst_numbers():
    fix = "accept it on purpose with `nox -s golden`"
    cells = []
    for b, path, err in [
        ("jax", "predict", 3e-3),
        ("jax", "eager", 5e-3),
        ("jax", "jit", 3e-3),
        ("torch", "predict", 4e-3),
    ]:
        bad = Finding("compare", f"output: relative L2 error {err:.2e} > 1e-06", fix=fix)
        cells.append(_cell("bn_mlp", "inference", b, path, err, "fail", [bad]))
    crashed = Finding("backend", "torch crashed on bn_mlp", fix="see its log")
    cells.append(_cell("bn_mlp", "inference", "torch", "eager", 0.0, "error", [crashed]))
    diagnosed = (  # what the diagnoses found on jax: each adds its few words to the line
        Finding("localize", "localized: first divergent layer 'bn' (BatchNormalization): rel L2 4.68e-03 from "
                "inputs at 7.73e-08 (R = 2.64e+04); profile: results/layers/bn.png",
                brief="first divergent layer 'bn' (BatchNormalization)"),
        Finding("rounding", "semantic: the float64 run departs from the reference too (rel L2 4.9e-03)",
                brief="semantic: the float64 run departs too (different math)"),
    )  # fmt: skip
    cells[:3] = [replace(c, findings=(*c.findings, *diagnosed)) for c in cells[:3]]
    fails = [line for line in _render(cells).splitlines() if line.startswith(("FAIL ", "ERROR "))]
    assert fails == [
        "FAIL bn_mlp/inference (jax/cpu/predict, eager, jit): output: relative L2 error 5.00e-03 > 1e-06 "
        "(the worst of 3 paths); first divergent layer 'bn' (BatchNormalization); "
        f"semantic: the float64 run departs too (different math); {fix}",
        f"FAIL bn_mlp/inference (torch/cpu/predict): output: relative L2 error 4.00e-03 > 1e-06; {fix}",
        "ERROR bn_mlp/inference (torch/cpu/eager): torch crashed on bn_mlp; see its log",
    ]


def test_the_full_table_only_with_verbose_and_without_empty_columns():
    assert "max abs" not in _render(_cells())
    text = _render(_cells(), verbose=True)
    assert "max abs" in text and "tol (rel L2)" in text
    for empty in ("top-5", "float64 run", "run twice"):
        assert empty not in text
    cells = _cells()
    cells[0] = replace(cells[0], determinism="deterministic")
    assert "run twice" in _render(cells, verbose=True) and "same bits" in _render(cells, verbose=True)


def test_the_full_table_is_written_to_disk(tmp_path):
    report.write_table(_cells(), tmp_path / "parity-table.txt")
    text = (tmp_path / "parity-table.txt").read_text()
    assert "max abs" in text and "FAIL lstm/lstm (jax/cpu/eager)" in text
    assert "note linear/dense_nobias (tensorflow/cpu/predict)" in text


def test_github_step_summary_gets_the_grid_and_failures_as_markdown(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert report.write_step_summary(_cells()) == summary
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, as GitHub expects
    assert "| model/case | tensorflow | jax | torch | torch-native |" in text
    assert "| lstm/lstm | 0.04x | **FAIL 2.50x** | 0.04x | **ERROR** |" in text
    assert "- **FAIL** lstm/lstm (jax/cpu/eager): output: relative L2 error" in text
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert report.write_step_summary(_cells()) is None


def test_exit_code_of_a_run():
    assert from_verdicts(["pass", "unsupported", "skipped"]) == Exit.OK
    assert from_verdicts(["pass", "fail"]) == Exit.REGRESSION
    assert from_verdicts(["pass", "error"]) == Exit.INFRA
    assert from_verdicts(["error", "fail"]) == Exit.REGRESSION  # the regression is what must be acted on
    assert from_verdicts(c.status for c in _cells()) == 1


def test_version_and_usage_errors_through_the_command_line(tmp_path):
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"keras-parity {__version__}"
    unknown = cli("parity", "--model", "nosuch", "--out", str(tmp_path / "out"))
    assert unknown.returncode == Exit.USAGE
    assert unknown.stderr.startswith("error: unknown model 'nosuch'") and unknown.stderr.count("\n") == 1
    assert cli("parity", "--no-such-flag").returncode == Exit.USAGE  # argparse's own
    merged = cli("report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "merged"))
    assert merged.returncode == Exit.USAGE and "parity.json is missing" in merged.stderr


def test_merged_results_label_each_cell_with_the_directory_it_came_from(tmp_path):
    for machine in ("machine-a", "machine-b"):
        report.write_json(_cells(), {}, tmp_path / machine / "parity.json")
    cells, runs = merge([tmp_path / "machine-a", tmp_path / "machine-b"])
    assert len(cells) == 2 * len(_cells()) and sorted(runs) == ["machine-a", "machine-b"]
    assert {c.device for c in cells} == {"cpu (machine-a)", "cpu (machine-b)"}
    assert sorted(p for c in cells for p in c.problems) == sorted(2 * [p for c in _cells() for p in c.problems])

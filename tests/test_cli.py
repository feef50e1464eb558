"""The command line in-process: one parser made of the command modules, and errors caught once in
main(), each exiting with its own code and one line on stderr."""

import contextlib

import pytest

from keras_parity import cli
from keras_parity.commands import catalog, report
from keras_parity.drift.cellenv import CellFailure
from keras_parity.drift.groups import GroupError
from keras_parity.drift.history import HistoryError
from keras_parity.drift.matrix import MatrixError
from keras_parity.errors import InfraError, UsageError
from keras_parity.exitcodes import Exit
from keras_parity.golden.files import GoldenError
from keras_parity.golden.regen import RegenError
from keras_parity.pins import PinsError
from keras_parity.registry.usermodel import UserModelError
from keras_parity.rehearse import RehearsalError
from keras_parity.report.merge import MergeError
from keras_parity.repro import ReproError
from keras_parity.run.envs import EnvError
from keras_parity.run.varpaths import VariablePathError

NAMES = [m.__name__.rpartition(".")[2] for m in catalog.COMMANDS]


def test_every_command_module_declares_its_parser_and_runs():
    assert set(NAMES) >= {"parity", "golden", "bench", "images", "localize", "report", "zoo", "repro", "drift"}
    assert {"noise", "growth"} <= set(NAMES)
    for module in catalog.COMMANDS:
        assert callable(module.add_parser) and callable(module.run), module.__name__
    for name in NAMES:
        args = catalog.parser().parse_args([name, *(["x"] if name == "report" else [])])
        assert args.command.__name__ == f"keras_parity.commands.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_every_commands_help_prints_and_exits_0(name, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0 and f"usage: keras-parity {name}" in capsys.readouterr().out


def test_argparse_errors_keep_exiting_2(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["parity", "--no-such-option"])
    assert done.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_a_usage_error_from_a_command_exits_2_with_one_line(capsys, tmp_path):
    code = cli.main(["parity", "--model", "nosuch", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == Exit.USAGE and err.startswith("error: unknown model 'nosuch'") and err.count("\n") == 1
    assert cli.main(["parity", "--time-limit", "0", "--out", str(tmp_path)]) == Exit.USAGE
    assert "--time-limit 0 is not a duration" in capsys.readouterr().err


def test_an_infrastructure_error_exits_3_with_its_own_line(monkeypatch, capsys, tmp_path):
    def broken(args, console):
        raise EnvError("uv is missing; install it\nwith more detail")

    monkeypatch.setattr(report, "run", broken)
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path)]) == Exit.INFRA
    assert capsys.readouterr().err == "error: uv is missing; install it\n"


def test_a_bug_exits_3_with_one_line_and_its_traceback_in_the_results(monkeypatch, capsys, tmp_path):
    def buggy(args, console):
        raise KeyError("models")

    monkeypatch.setattr(report, "run", buggy)
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == Exit.INFRA
    log = tmp_path / "out" / cli.ERROR_LOG
    err = capsys.readouterr().err
    assert err == f"error: internal error: KeyError: 'models'; the traceback is in {log}\n"
    assert "Traceback" in log.read_text() and "in buggy" in log.read_text()


def test_a_bug_in_a_command_without_a_results_folder_logs_to_results(monkeypatch, capsys, tmp_path):
    from keras_parity.commands import growth

    monkeypatch.setattr(growth, "run", lambda args, console: 1 / 0)
    monkeypatch.setattr(cli, "RESULTS", tmp_path)
    assert cli.main(["growth"]) == Exit.INFRA
    assert capsys.readouterr().err.count("\n") == 1 and "ZeroDivisionError" in (tmp_path / cli.ERROR_LOG).read_text()


def test_what_needs_a_checkout_says_so_outside_one(monkeypatch, capsys):
    monkeypatch.setattr(cli, "CHECKOUT", None)
    assert cli.main(["images"]) == Exit.USAGE
    assert capsys.readouterr().err == (
        "error: `keras-parity images` runs from a checkout of keras-parity (clone it and use its nox sessions)\n"
    )


USAGE = [PinsError, GoldenError, RehearsalError, MergeError, HistoryError, GroupError, MatrixError]
USAGE += [UserModelError, VariablePathError, ReproError]


@pytest.mark.parametrize("kind", USAGE)
def test_bad_input_is_a_usage_error(kind):
    assert issubclass(kind, UsageError) and kind("x").exit_code == Exit.USAGE


@pytest.mark.parametrize("kind", [EnvError, RegenError])
def test_a_broken_machine_is_an_infrastructure_error(kind):
    assert issubclass(kind, InfraError) and kind("x").exit_code == Exit.INFRA


def test_a_cell_failure_and_a_reproducer_keep_their_own_codes():
    assert CellFailure("import-error", "no module").exit_code == Exit.INFRA
    assert ReproError("weights differ", Exit.REGRESSION).exit_code == Exit.REGRESSION
    assert issubclass(VariablePathError, ValueError)  # the runner's callers catch it as one


def _a_file(tmp_path):
    (tmp_path / "a-file").write_text("kept")
    return tmp_path / "a-file"


def _table_a_folder(tmp_path):
    (tmp_path / "out" / "parity-table.txt").mkdir(parents=True)
    (tmp_path / "out" / "parity.json").write_text("kept")
    return tmp_path / "out"


BAD_OUT = [
    (_a_file, "is a file, not a folder; pass --out a folder you can write"),
    (lambda tmp_path: _a_file(tmp_path) / "below", "cannot be written (Not a directory); pass --out a folder"),
    (lambda tmp_path: "/proc/nope", "--out /proc/nope cannot be written (No such file or directory); pass --out"),
    (_table_a_folder, "parity-table.txt is not a file; move it out of the way, or pass another --out"),
]


@pytest.mark.parametrize("command", ["parity", "report", "repro", "golden"])
@pytest.mark.parametrize("out, message", BAD_OUT)
def test_an_unwritable_out_is_refused_before_the_command_starts(command, out, message, tmp_path, monkeypatch, capsys):
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out = out(tmp_path)
    monkeypatch.setattr(catalog.COMMANDS[NAMES.index(command)], "run", lambda *a: pytest.fail("the command ran"))
    argv = [command, *([str(tmp_path)] if command == "report" else []), "--out", str(out)]
    assert cli.main(argv) == Exit.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert all(p.read_bytes() == data for p, data in before.items())


@pytest.mark.parametrize("doc", ["{}", "[]", '{"cells": 5}', '{"cells": [{"model": "x"}]}'])
def test_report_on_a_parity_json_without_cells_is_a_usage_error(doc, tmp_path, capsys):
    (tmp_path / "machine").mkdir()
    (tmp_path / "machine" / "parity.json").write_text(doc)
    assert cli.main(["report", str(tmp_path / "machine"), "--out", str(tmp_path / "merged")]) == Exit.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "parity.json" in err and ("holds no list" in err or "cannot be read" in err)
    assert "Traceback" not in err and not (tmp_path / "merged" / "parity.json").exists()


def test_a_bug_whose_traceback_no_folder_can_hold_still_exits_3_with_one_line(monkeypatch, capsys, tmp_path):
    nowhere = _a_file(tmp_path)
    monkeypatch.setattr(report, "run", lambda args, console: 1 / 0)
    monkeypatch.setattr(cli, "hold", lambda out: contextlib.nullcontext())  # an --out no check refused
    monkeypatch.setattr(cli.Path, "cwd", lambda: nowhere)
    monkeypatch.setattr(cli.tempfile, "gettempdir", lambda: str(nowhere))
    assert cli.main(["report", str(tmp_path), "--out", str(nowhere)]) == Exit.INFRA
    assert capsys.readouterr().err == (
        "error: internal error: ZeroDivisionError: division by zero; no folder could hold its traceback\n"
    )

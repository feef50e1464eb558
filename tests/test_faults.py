"""Faults while a run is under way: a run owns its backend processes (stopped with their process
groups on any way out), two commands never share a results folder, and a backend process that
crashes or hangs costs only the model it was on."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, cli

from keras_parity import cli as cli_module
from keras_parity import golden
from keras_parity.commands import report
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run import launch
from keras_parity.run.record import MODEL_MARKER, BackendRun, ModelRecord, write_run

# A process that starts a child of its own and then sleeps: both must go when it is stopped.
PARENT_AND_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _processes_mentioning(text: str) -> list[int]:
    """The processes whose command line holds `text` (this one's own left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and text in cmdline and int(entry.name) != os.getpid() and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _sleeper(tmp_path: Path, name: str) -> tuple[launch.GroupProcess, int]:
    """A GroupProcess that started a child of its own: (it, its child's pid)."""
    log = open(tmp_path / f"{name}.log", "w+")  # noqa: SIM115 (the process keeps it)
    proc = launch.GroupProcess([sys.executable, "-c", PARENT_AND_CHILD], stdout=subprocess.PIPE, stderr=log)
    return proc, int(proc.stdout.readline())


def test_a_local_backend_process_runs_in_its_own_group_and_is_killed_with_its_children(tmp_path):
    proc, child = _sleeper(tmp_path, "torch")
    assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)  # a Ctrl-C on the terminal does not reach it
    proc.kill()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL and not _alive(child)


def _interrupted_launch(monkeypatch, tmp_path, interrupt: type[BaseException]):
    """run_backends with sleeping processes for jax and torch, interrupted at its first poll:
    (what it logged, the processes' and their children's pids)."""
    started: list[int] = []

    def start_local(b, out, *rest):
        proc, child = _sleeper(tmp_path, b)
        started.extend([proc.pid, child])
        return proc

    def on_poll(running):
        raise interrupt()

    monkeypatch.setattr(launch, "_start_local", start_local)
    lines: list[str] = []
    with pytest.raises(interrupt):
        launch.run_backends(
            ["jax", "torch"], ["linear"], tmp_path / "raw", registry=builtin_registry(), log=lines.append,
            on_poll=on_poll,
        )  # fmt: skip
    return lines, started


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, cli_module.Terminated, RuntimeError])
def test_any_way_out_of_a_run_stops_every_backend_process_and_says_which(monkeypatch, tmp_path, interrupt):
    lines, started = _interrupted_launch(monkeypatch, tmp_path, interrupt)
    assert lines == ["stopped the jax and torch backend processes"]
    time.sleep(0.2)
    assert [pid for pid in started if _alive(pid)] == []


class _Hung:
    """A Process that never ends by itself."""

    returncode = None

    def poll(self):
        return self.returncode

    def kill(self):
        self.returncode = -signal.SIGKILL


def _finished_linear(out: Path, backend: str = "torch", on: str = "cnn") -> None:
    """What a runner leaves when it finished linear and then started `on`."""
    arrays = {golden.key("linear", "infer", "eager", "output"): np.ones(3, np.float32)}
    write_run(out, BackendRun(backend, arrays=arrays, models={"linear": ModelRecord()}, partial=True))
    (out / f"{backend}.progress").write_text(on)


CRASH_LOG = f"""{MODEL_MARKER.format(model="linear")}
{MODEL_MARKER.format(model="cnn")}
/venv/keras/src/functional.py:259: UserWarning: The structure of `inputs` doesn't match.
Expected: ['x']
Received: inputs=Tensor(shape=(2, 8, 8, 3))
  warnings.warn(msg)
Traceback (most recent call last):
  File "/venv/keras/src/layer.py", line 3, in call
    return self.op(x)
RuntimeError: CUDA-less kernel failed for conv2d
W0000 00:00:1 cpu_feature_guard.cc:1] AVX512 not used

"""


def test_a_crashed_backend_keeps_its_finished_models_and_names_the_model_and_its_error(tmp_path):
    _finished_linear(tmp_path)
    (tmp_path / "torch.log").write_text(CRASH_LOG)
    run = launch.load_run(tmp_path, "torch", -signal.SIGKILL, models=["linear", "cnn", "lstm"])
    assert run.error is None and run.failure("linear") is None and run.cell("linear", "infer", "eager")
    assert run.errors["cnn"] == (
        "its runner was killed by SIGKILL: RuntimeError: CUDA-less kernel failed for conv2d; "
        f"see {tmp_path / 'torch.log'}"
    )
    assert run.errors["lstm"] == "not run: torch stopped on cnn before it"


def test_a_crash_message_skips_warnings_frames_and_what_came_before_the_model():
    assert launch.meaningful_line(CRASH_LOG, "cnn") == "RuntimeError: CUDA-less kernel failed for conv2d"
    earlier = "Traceback (most recent call last):\n  File 'x'\nKeyError: 'config'\n"  # a model the runner survived
    warning = "x.py:1: UserWarning: w\nmore\n  warnings.warn(msg)\n"
    warned = f"{earlier}{MODEL_MARKER.format(model='cnn')}\nSegfault in conv\n{warning}"
    assert launch.meaningful_line(warned, "cnn") == "Segfault in conv"
    assert launch.meaningful_line(CRASH_LOG.split("Traceback")[0], "cnn") == "(no output)"  # a warning alone
    assert launch.meaningful_line(f"{MODEL_MARKER.format(model='cnn')}\n\n", "cnn") == "(no output)"


def test_a_hung_backend_is_stopped_and_keeps_its_finished_models(tmp_path):
    _finished_linear(tmp_path)
    runs = {"torch": BackendRun("torch")}
    launch._collect({"torch": (_Hung(), time.perf_counter())}, runs, tmp_path, 0.0, None, ["linear", "cnn"])
    run = runs["torch"]
    assert run.error is None and "linear" in run.models
    assert run.errors["cnn"].startswith("torch did not finish within 0 s (it was on cnn); see ")


def test_a_run_that_wrote_nothing_is_one_error_naming_the_model(tmp_path):
    (tmp_path / "torch.progress").write_text("cnn")
    (tmp_path / "torch.log").write_text(CRASH_LOG)
    run = launch.load_run(tmp_path, "torch", 1, models=["cnn"])
    assert run.error.startswith("the torch runner exited with code 1 on cnn: RuntimeError: CUDA-less")


def test_a_second_command_in_the_same_out_folder_is_refused_naming_the_first(tmp_path):
    with cli_module.hold(tmp_path):
        with pytest.raises(cli_module.OutFolderBusy) as refused:
            with cli_module.hold(tmp_path):
                pass
    assert refused.value.exit_code == 2
    assert str(refused.value) == (
        f"another keras-parity command (pid {os.getpid()}) is writing to {tmp_path}; wait for it to finish "
        "or give this one a folder of its own with --out"
    )
    with cli_module.hold(tmp_path):  # released when the first one ended
        pass


def test_an_out_that_is_a_file_is_one_usage_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli_module.main(["report", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {tmp_path / 'file'} is a file, not a folder") and err.count("\n") == 1


@pytest.mark.parametrize(("signum", "code", "line"), [(None, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_exit_with_their_codes_and_one_line(monkeypatch, capsys, tmp_path, signum, code, line):
    def interrupted(args, console):
        if signum is None:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends

    monkeypatch.setattr(report, "run", interrupted)
    assert cli_module.main(["report", str(tmp_path), "--out", str(tmp_path)]) == code
    assert capsys.readouterr().err == f"error: {line}" + (" (SIGTERM)" if signum else "") + "\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or not callable(signal.getsignal(signal.SIGTERM))


# ---- slow: the real command and its real backend processes ----


def _start_parity(out: Path, *models: str, backends=("jax", "torch"), path: Path | None = None) -> subprocess.Popen:
    """`parity` on the models as a process of its own; `path`: a folder of the user's builders."""
    pythonpath = os.pathsep.join([str(ROOT), *([str(path)] if path else [])])
    env = {**os.environ, "PYTHONPATH": pythonpath, "KERAS_PARITY_ENVS": os.environ.get("KERAS_PARITY_ENVS", "")}
    env = {k: v for k, v in env.items() if v}
    cmd = [sys.executable, "-m", "keras_parity", "parity", "--out", str(out)]
    cmd += [a for m in models for a in ("--model", m)] + [a for b in backends for a in ("--backend", b)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# A builder that waits until its runner is stopped: the built-in models finish faster than a
# poll can catch a runner in them. User models run after the built-in ones, in the order given.
PAUSED = """import time

import keras


def hang():
    time.sleep(600)


def quick():
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(2, name="d")(x))
"""


@pytest.mark.slow
def test_ctrl_c_during_parity_stops_the_backend_processes_and_exits_130(tmp_path):
    (tmp_path / "paused_models.py").write_text(PAUSED)
    out = tmp_path / "results"
    proc = _start_parity(out, "linear", "paused_models:hang", path=tmp_path)  # both busy until stopped
    progress = [out / "raw" / f"{b}.progress" for b in ("jax", "torch")]
    _wait_for(lambda: all(p.exists() for p in progress), proc)  # both imported Keras and started
    assert len(_processes_mentioning(str(out / "raw"))) >= 2
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped the jax and torch backend processes" in stdout
    assert stderr.endswith("error: interrupted\n") and "Traceback" not in stderr
    assert _processes_mentioning(str(out)) == []


# A launcher (this process's child) that starts a watching backend in a group of its own and sleeps.
LAUNCHER = (
    "import os, subprocess, sys, time\n"
    "env = {**os.environ, 'KERAS_PARITY_PARENT_PID': str(os.getpid())}\n"
    "code = 'import os, time; from keras_parity.run import parent; parent.watch(); "
    "print(os.environ.get(parent.PARENT), flush=True); time.sleep(60)'\n"
    "backend = subprocess.Popen([sys.executable, '-c', code], env=env, start_new_session=True)\n"
    "print(backend.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_backend_ends_when_its_launcher_is_killed_with_sigkill(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, env=env)
    backend = int(launcher.stdout.readline())
    assert launcher.stdout.readline().strip() == "None"  # the variable is the backend's alone, not its children's
    assert _alive(backend)
    time.sleep(1.0)  # the backend lives on while its launcher does
    assert _alive(backend)
    launcher.kill()  # SIGKILL: the launcher can stop nothing on its way out
    launcher.wait()
    deadline = time.monotonic() + 5
    while _alive(backend) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(backend)


def test_a_backend_started_by_hand_is_not_watched(monkeypatch):
    from keras_parity.run import parent

    monkeypatch.delenv(parent.PARENT, raising=False)
    parent.watch()
    assert "parent-watch" not in {t.name for t in threading.enumerate()}


@pytest.mark.slow
def test_parity_killed_with_sigkill_leaves_no_backend_process_running(tmp_path):
    (tmp_path / "paused_models.py").write_text(PAUSED)
    out = tmp_path / "results"
    proc = _start_parity(out, "linear", "paused_models:hang", path=tmp_path)
    progress = [out / "raw" / f"{b}.progress" for b in ("jax", "torch")]
    _wait_for(lambda: all(p.exists() for p in progress), proc)  # both backends are computing
    assert len(_processes_mentioning(str(out / "raw"))) >= 2
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(out)) == []


@pytest.mark.slow
def test_two_commands_in_the_same_out_folder_the_second_refused_the_first_untouched(tmp_path):
    out = tmp_path / "results"
    first = _start_parity(out, "linear", backends=("jax",))
    _wait_for(lambda: (out / "raw" / "jax.log").exists(), first)
    second = cli("golden", "--model", "linear", "--backend", "jax", "--out", str(out))
    assert second.returncode == 2
    assert second.stderr == (
        f"error: another keras-parity command (pid {first.pid}) is writing to {out}; wait for it to finish "
        "or give this one a folder of its own with --out\n"
    )
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert (out / "parity.json").exists() and (out / "raw" / "jax.json").exists()
    assert subprocess.run(["git", "status", "--porcelain", "golden"], cwd=ROOT, capture_output=True).stdout == b""


@pytest.mark.slow
def test_a_backend_killed_in_its_second_model_keeps_the_first_models_cells(tmp_path):
    import json

    (tmp_path / "paused_models.py").write_text(PAUSED)
    out = tmp_path / "results"
    models = ("linear", "paused_models:hang", "paused_models:quick")
    proc = _start_parity(out, *models, backends=("torch",), path=tmp_path)
    progress = out / "raw" / "torch.progress"
    _wait_for(lambda: progress.exists() and progress.read_text() == "paused_models.hang", proc)
    (runner,) = [p for p in _processes_mentioning(str(out / "raw")) if "keras_parity.run.runner" in
                 Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]  # fmt: skip
    os.kill(runner, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    cells = json.loads((out / "parity.json").read_text())["cells"]
    verdicts = {(c["model"], c["status"]) for c in cells}
    assert {s for m, s in verdicts if m == "linear"} == {"pass"}
    assert {s for m, s in verdicts if m.startswith("paused_models.")} == {"error"}
    assert "torch failed on paused_models.hang: its runner was killed by SIGKILL: " in stdout
    assert "torch failed on paused_models.quick: not run: torch stopped on paused_models.hang before it" in stdout


@pytest.mark.parametrize(
    ("code", "how"),
    [
        (137, "was killed by SIGKILL (exit code 137; out of its memory limit?)"),
        (143, "was killed by SIGTERM (exit code 143)"),
        (-9, "was killed by SIGKILL"),
        (3, "exited with code 3"),
    ],
)
def test_a_containers_exit_code_past_128_is_read_as_its_signal(tmp_path, code, how):
    """A container reports a signal as 128 + its number, as a shell does; a local process as minus it."""
    (tmp_path / "torch.log").write_text("MemoryError\n")
    assert (
        launch.crash_message(tmp_path, "torch", code)
        == f"the torch runner {how}: MemoryError; see {tmp_path / 'torch.log'}"
    )

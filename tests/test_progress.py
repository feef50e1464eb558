"""Progress of long work: bars on a terminal, two lines each in a log, the numbers measured
from outside the command (packages installed, bytes written, build steps)."""

import io
import sys
from pathlib import Path

from rich.console import Console

from keras_parity.report import progress
from keras_parity.run import envs, images


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def test_watch_without_a_terminal_says_what_it_did_in_two_lines(tmp_path):
    lines = []
    script = (
        "import pathlib, sys, time\n"
        "for i in range(3):\n"
        "    (pathlib.Path(sys.argv[1]) / f'{i}.whl').write_bytes(b'x' * 1000); time.sleep(0.3)\n"
        "sys.stderr.write('done\\n')"
    )
    proc = progress.watch(
        [sys.executable, "-c", script, str(tmp_path)], "downloading", lambda: len(list(tmp_path.glob("*.whl"))),
        total=3, unit="wheels", log=lines.append,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "done\n"
    assert lines[0] == "downloading ..."
    assert lines[1].startswith("downloading: 3 of 3 wheels in ")


def test_watch_passes_a_failure_on_with_its_message(tmp_path):
    lines = []
    cmd = [sys.executable, "-c", "import sys; sys.exit('no such wheel: torch==9')"]
    proc = progress.watch(cmd, "syncing", lambda: 0, log=lines.append)
    assert proc.returncode == 1 and "no such wheel: torch==9" in proc.stderr
    assert len(lines) == 2


def test_bytes_are_shown_as_sizes():
    act = progress.Activity("downloading", None, "bytes")
    act.update(1_234_000_000)
    assert act.amount() == "1.2 GB"


def test_on_a_terminal_work_joins_the_commands_display_and_leaves_it_when_done():
    console = _terminal()
    with progress.live(console) as bars:
        assert bars is not None
        with progress.activity("syncing .venvs/jax", total=37, unit="packages", log=None) as act:
            act.update(12, note="jax")
            (task,) = bars.tasks
            assert (task.completed, task.total, task.description) == (12, 37, "syncing .venvs/jax: jax")
            assert str(progress.Amount().render(task)) == "12/37 packages"
        assert bars.tasks == []
        with progress.BackendProgress(console, ["jax", "torch"], ["linear", "cnn"]) as backend_bars:
            backend_bars.update({"jax": "cnn"})  # torch finished
            shown = {t.description: t.completed for t in bars.tasks}
            assert shown == {"jax: cnn": 1, "torch: done": 2}
    assert progress._LIVE is None


def test_environment_packages_are_counted_by_their_metadata(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for name in ("keras-3.15.1.dist-info", "numpy-2.4.6.dist-info", "numpy"):
        (site / name).mkdir(parents=True)
    assert envs.installed(tmp_path) == 2


class _Api:
    def __init__(self, chunks):
        self.chunks = chunks

    def build(self, **kw):
        assert kw["network_mode"] == "none" and kw["decode"] is True
        return iter(self.chunks)


class _Client:
    def __init__(self, chunks):
        self.api = _Api(chunks)


STEPS = [
    {"stream": "Step 1/3 : ARG BASE_IMAGE=debian:bookworm-slim\n"},
    {"stream": " ---> Using cache\n"},
    {"stream": "Step 2/3 : FROM ${BASE_IMAGE} AS deps\n"},
    {"stream": "Step 3/3 : RUN pip install --no-index -r lock.txt\n"},
]


def test_an_image_build_streams_its_steps_into_the_log(tmp_path):
    lines, log = [], []
    assert images._stream_build(_Client(STEPS), tmp_path, "t:1", {}, lines, log.append) is None
    steps = [ln.strip() for ln in log if ln.startswith("  Step")]
    assert steps == [c["stream"].strip() for c in STEPS if c["stream"].startswith("Step")]
    assert log[-1].startswith("building t:1: 3 of 3 steps in ")


def test_a_failing_build_step_is_its_message_and_stays_in_the_build_log(tmp_path):
    lines = []
    chunks = [*STEPS, {"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"}]
    failure = images._stream_build(_Client(chunks), tmp_path, "t:1", {}, lines, lambda *a: None)
    assert failure == "The command '/bin/sh -c pip install' returned a non-zero code: 1"
    assert lines[0] == STEPS[0]["stream"].strip() and lines[-1] == failure


def test_downloaded_bytes_count_each_wheel_once(tmp_path):
    dest, tmp = tmp_path / "dest", tmp_path / "tmp" / "pip-unpack-1"
    dest.mkdir()
    tmp.mkdir(parents=True)
    (dest / "a.whl").write_bytes(b"x" * 100)
    (tmp / "a.whl").write_bytes(b"x" * 100)  # copied into dest already: not twice
    (tmp / "b.whl").write_bytes(b"x" * 50)  # still downloading
    assert images._bytes(dest, tmp_path / "tmp") == 150


def test_two_commands_syncing_one_environment_install_it_once(tmp_path, monkeypatch):
    """The second waits for the first (a lock beside the environment), then finds it synced."""
    import threading
    import time

    monkeypatch.setenv("KERAS_PARITY_ENVS", str(tmp_path))
    calls, inside = [], []

    def venv(cmd, what):  # uv venv: the interpreter appears
        python = Path(cmd[-1]) / "bin" / "python"
        python.parent.mkdir(parents=True, exist_ok=True)
        python.touch()

    def sync(lock, python, what, log=print):  # a slow install, watched for overlap
        inside.append(1)
        calls.append(len(inside))
        time.sleep(0.5)
        inside.pop()

    monkeypatch.setattr(envs, "run_or_fail", venv)
    monkeypatch.setattr(envs, "sync", sync)
    got = []
    threads = [threading.Thread(target=lambda: got.append(envs.ensure("jax", log=None))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]  # one install, never two at once
    assert got == [envs.env_python("jax")] * 2 and envs.is_synced(tmp_path / "jax", envs.lock_file("jax"))

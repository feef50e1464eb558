"""Run the backend processes side by side and collect what each one wrote."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

from keras_parity import golden, paths
from keras_parity.paths import ROOT
from keras_parity.registry.spec import ModelSpec, Registry
from keras_parity.run import envinfo, envs, flags, parent
from keras_parity.run.flags import RunFlags
from keras_parity.run.record import MODEL_MARKER, BackendRun, read_run
from keras_parity.run.settings import USERS, Settings
from keras_parity.twins import ENV


def current_model(out: Path, backend: str) -> str | None:
    """The model a backend's runner is on (it writes <backend>.progress before each one)."""
    path = out / f"{backend}.progress"
    return path.read_text().strip() or None if path.exists() else None


class Process(Protocol):
    """A running backend or twin: a local process (subprocess.Popen) or its container (images.ContainerRun)."""

    returncode: int | None

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


class GroupProcess(subprocess.Popen):
    """A local backend process in a process group of its own: a Ctrl-C on the terminal does
    not reach it, and `kill` stops it with every process it started."""

    def __init__(self, cmd, **kwargs):
        super().__init__(cmd, start_new_session=True, **kwargs)

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass
        self.wait()


def run_backends(
    backends: list[str],
    models: list[str],
    out: Path,
    asked: RunFlags | None = None,
    *,
    registry: Registry,
    docker: bool = False,
    python: dict[str, Path] | None = None,
    twins: list[str] | None = None,
    golden_dir: Path | None = None,
    settings: Settings = USERS,
    log=print,
    on_poll=None,
) -> dict[str, BackendRun]:
    """Start one runner per backend at once (imports overlap on the cores), each computing what
    `asked` says: a local process in the backend's environment, or with docker=True a container
    of the backend's image; then the native twins named (twins=[]: all of them) beside them.
    `registry` holds the models' specs: a user model's travels to the runners as its source;
    `settings` the time limit and the ISA cap (each child gets the cap in its environment)."""
    asked = asked or RunFlags()
    out.mkdir(parents=True, exist_ok=True)
    runs = {b: BackendRun(b) for b in backends}
    procs: dict[str, tuple[Process, float]] = {}
    # Compiled JAX programs and big models' weights, reused between runs (--naive: none).
    cache = paths.cache_dir()
    args = [a for m in models for a in _model_args(m, registry[m])] + flags.to_argv(asked)
    try:  # every process started here is stopped on any way out (Ctrl-C, SIGTERM, an error)
        for b in backends:
            _clear(out, b)
            try:
                procs[b] = (
                    _start_container(b, out, args, asked.device, _user_folders(registry, models), settings)
                    if docker
                    else _start_local(b, out, args, cache, asked.naive, python, log, asked.device, settings),
                    time.perf_counter(),
                )
            except envs.EnvError as exc:
                runs[b].error = str(exc)
        for twin in (twins or _TWINS) if twins is not None else ():
            runs[twin] = BackendRun(twin, twin=True)
            _clear(out, twin)
            if docker:
                runs[twin].error = "twins run in the local environments only; run without --docker"
                continue
            builtin = [m for m in models if not registry[m].source]
            try:
                procs[twin] = (_start_twin(twin, out, builtin, cache, golden_dir, log, settings), time.perf_counter())
            except envs.EnvError as exc:
                runs[twin].error = str(exc)
        _collect(procs, runs, out, settings.seconds(), on_poll, models)
    finally:
        stop(procs, log, "containers" if docker else "processes")
    return runs


def stop(procs: dict[str, tuple[Process, float]], log, what: str = "processes") -> list[str]:
    """Kill every process still running (a local one with its process group, a container
    stopped and removed) and say in one line which; returns their names."""
    stopped = []
    for name, (proc, _) in list(procs.items()):
        del procs[name]
        try:
            if proc.poll() is None:
                proc.kill()
                stopped.append(name)
        except Exception as exc:  # one that cannot be stopped does not keep the others running
            log(f"could not stop the {name} backend: {exc}")
    if stopped:
        names = " and ".join([", ".join(stopped[:-1]), stopped[-1]] if len(stopped) > 1 else stopped)
        noun = what if len(stopped) > 1 else {"processes": "process", "containers": "container"}[what]
        log(f"stopped the {names} backend {noun}")
    return stopped


def _collect(procs: dict[str, tuple[Process, float]], runs: dict, out: Path, limit, on_poll, models=()) -> None:
    """Each process's run into `runs` as it ends (so each one's wall time is its own); one
    running past `limit` seconds is stopped, the model it was on an error and the models it
    had finished kept."""
    while procs:
        for b, (proc, t0) in list(procs.items()):
            code = proc.poll()
            if code is not None:
                runs[b] = load_run(out, b, code, twin=b in ENV, models=models)
            elif time.perf_counter() - t0 > limit:
                proc.kill()
                on = current_model(out, b)
                late = (
                    f"{b} did not finish within {limit:.0f} s" + (f" (it was on {on})" if on else "")
                    + f"; see {out / (b + '.log')}, or allow more with --time-limit SECONDS"
                )  # fmt: skip
                runs[b] = load_run(out, b, proc.returncode, twin=b in ENV, models=models, why=late)
            else:
                continue
            runs[b].wall = time.perf_counter() - t0
            del procs[b]
        if on_poll:
            on_poll({b: current_model(out, b) for b in procs})
        time.sleep(0.05)


def _clear(out: Path, name: str) -> None:
    """What an earlier run of this backend or twin left in `out`."""
    for suffix in (".npz", ".json", ".log", ".layers.npz", ".sketches.npz", ".feeds.npz", ".progress"):
        (out / f"{name}{suffix}").unlink(missing_ok=True)


_TWINS = tuple(ENV)


def child_env(settings: Settings = USERS) -> dict[str, str]:
    """A backend process's environment: this one's with the run's settings, the harness's source
    first on PYTHONPATH and the user's own entries kept after it (a builder module found through it),
    and this process's id, which the backend follows (run/parent.py: killed with it)."""
    mine = [str(envinfo.source_path())]
    theirs = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in mine]
    path = os.pathsep.join(mine + theirs)
    return {**os.environ, **settings.child_env(), "PYTHONPATH": path, parent.PARENT: str(os.getpid())}


def _start_twin(twin, out, models, cache, golden_dir, log, settings):
    exe = envs.ensure(ENV[twin][0], log=log)
    cmd = [str(exe), "-m", "keras_parity.twins.runner", "--twin", twin, "--out", str(out), "--cache-dir", str(cache)]
    cmd += [a for m in models for a in ("--model", m)] + (["--golden-dir", str(golden_dir)] if golden_dir else [])
    env = child_env(settings)
    with open(out / f"{twin}.log", "w") as log_file:
        return GroupProcess(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def _model_args(name: str, spec: ModelSpec) -> tuple[str, str]:
    """How a runner's command line names a model: a built-in by name, a user's by its source."""
    return ("--user-model", spec.source.to_json()) if spec.source else ("--model", name)


def _start_local(b, out, args, cache, naive, python, log, device, settings):
    exe = (python or {}).get(b) or envs.ensure(b, log=log, device=device)
    cmd = [str(exe), "-m", "keras_parity.run.runner", "--backend", b, "--out", str(out), *args]
    cmd += [] if naive else ["--cache-dir", str(cache)]
    env = child_env(settings)
    with open(out / f"{b}.log", "w") as log_file:  # the child keeps its own descriptor
        return GroupProcess(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def _user_folders(registry: Registry, models: list[str]) -> list[str]:
    """The host folders a container needs to see a user model: its file's, its inputs' and
    the folder its modules import from (mounted read-only at the same paths)."""
    folders = set()
    for m in models:
        s = registry[m].source
        if s:
            files = [s.target] if s.kind == "file" else []
            folders |= {s.cwd, *(str(Path(f).parent) for f in [*files, s.inputs] if f)}
    return sorted(folders)


CPU_KERNEL_ENV = (
    "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "XLA_FLAGS",
    "NPY_DISABLE_CPU_FEATURES",
)  # fmt: skip


def _start_container(b, out, args, device, mounts, settings):
    from keras_parity.run.container import ContainerRun

    # the cap goes in as the runner reads it, which sets each library's cap (keras_parity/run/knobs.py)
    env = {"KERAS_PARITY_GIT_COMMIT": envinfo.git_commit(), **settings.child_env()}
    # The kernel choices a machine (or `nox -s tests -- --foreign-cpu`) sets: a container runs
    # on the same CPU and must pick the same kernels as a local process would.
    env.update({k: os.environ[k] for k in CPU_KERNEL_ENV if os.environ.get(k)})
    return ContainerRun(b, out, args, env, device, mounts)


def load_run(
    out: Path, backend: str, returncode: int | None = 0, twin: bool = False, models=(), why: str | None = None
) -> BackendRun:
    """Read back what one runner process wrote to `out`, its error said with its fix. A process
    that stopped before it finished (a crash, or `why`: stopped over its time limit) keeps the
    models it had finished; the model it was on, and those after it, become its errors."""
    try:
        run = read_run(out, backend)
    except golden.GoldenError:
        return BackendRun(backend, twin=twin, error=why or crash_message(out, backend, returncode))
    if run.partial:
        on = current_model(out, backend)
        failed = why or crash_message(out, backend, returncode)
        if on and on not in run.models:
            run.errors[on] = why or crash_message(out, backend, returncode, of_model=True)
        for m in models:
            if m not in run.models and m not in run.errors:
                run.errors[m] = f"not run: {backend} stopped on {on} before it"
        if not on:
            run.error = failed
    elif run.device_error:
        run.error = f"{run.device_error}; run it on a GPU host or with --device cpu"
    elif run.import_error and run.twin:  # asked for with --twins: an error, not a skip
        where = envs.env_root() / ENV[backend][0]
        run.error = (
            f"{backend} was asked for and cannot run: {run.import_error}; its library is not in "
            f"{where}: recreate it with `rm -r {where}` and rerun, or leave {backend} out of --twins"
        )
    elif run.import_error:
        run.error = (
            f"import failed: {run.import_error}; recreate its environment with "
            f"`rm -r {envs.env_root() / backend}` and rerun"
        )
    return run


def crash_message(out: Path, backend: str, returncode: int | None, of_model: bool = False) -> str:
    """A runner that stopped without finishing: its exit (or signal), the model it was on (unless
    the message is that model's own) and the last meaningful line of its log."""
    log_file = out / f"{backend}.log"
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    on = current_model(out, backend)
    how = f"exited with code {returncode}"
    if returncode is not None and returncode < 0 and -returncode in signal.valid_signals():
        how = f"was killed by {signal.Signals(-returncode).name}"
    elif returncode is not None and returncode - 128 in signal.valid_signals():  # a container's shell-style code
        sig = signal.Signals(returncode - 128)
        oom = "; out of its memory limit?" if sig == signal.SIGKILL else ""
        how = f"was killed by {sig.name} (exit code {returncode}{oom})"
    who = "its runner" if of_model else f"the {backend} runner"
    where = f" on {on}" if on and not of_model else ""
    return f"{who} {how}{where}: {meaningful_line(log_text, on)}; see {log_file}"


# A warning as Python prints it: "file:line: SomeWarning: message", the message's further lines,
# then the source line, indented ("  warnings.warn(msg)"). Absl's and XLA's are one line each.
_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_NOISE = re.compile(
    r"^WARNING|^[WI]\d{4} |^\s|^Traceback \(most recent call last\):|^During handling|^The above exception"
)
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Fault)\b")


def meaningful_line(text: str, model: str | None = None) -> str:
    """The line of a runner's log that says why it stopped: of what it wrote since it started on
    `model`, the last exception line, else the last line that is no warning, frame or blank."""
    marker = MODEL_MARKER.format(model=model) if model else None
    if marker and marker in text:
        text = text.rsplit(marker, 1)[1]
    lines, in_warning = [], False
    for line in text.splitlines():
        if _WARNING.match(line):
            in_warning = True
        elif in_warning and line[:1].isspace():  # the source line closes the warning
            in_warning = False
        elif not in_warning and line.strip() and not _NOISE.search(line):
            lines.append(line.strip())
    lines = [ln for ln in lines if not ln.startswith(MODEL_MARKER.split("{")[0])]
    exceptions = [ln for ln in lines if _EXCEPTION.match(ln)]
    return (exceptions or lines or ["(no output)"])[-1]

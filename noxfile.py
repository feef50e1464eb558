"""Sessions of keras-parity. Pins live in requirements/pins.toml, locked to requirements/<platform>/*.txt."""

import os
import platform
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["parity", "tests", "lint"]

PYTHON = "3.11"
# This machine's lock folder (the same table as keras_parity/run/machine.py's LOCK_PLATFORMS;
# the noxfile imports nothing of the project, so that any nox can load it).
_MACHINE = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
LOCK_PLATFORM = {
    ("linux", "x86_64"): "linux-x86_64",
    ("linux", "aarch64"): "linux-aarch64",
    ("darwin", "aarch64"): "macos-arm64",
}.get((platform.system().lower(), _MACHINE))


def _harness(session: nox.Session, lock: str = "harness") -> None:
    if LOCK_PLATFORM is None:
        session.error(
            f"no locks for {platform.system()} {platform.machine()}: requirements/ holds linux-x86_64, "
            "linux-aarch64 and macos-arm64; add yours under [platforms] in requirements/pins.toml and run "
            "`nox -s lock`"
        )
    session.install("--require-hashes", "-r", str(Path("requirements") / LOCK_PLATFORM / f"{lock}.txt"))


def _keras_parity(session: nox.Session, action: str) -> None:
    """The harness environment, then `python -m keras_parity ACTION` with the session's arguments."""
    _harness(session)
    session.run("python", "-m", "keras_parity", action, *session.posargs)


@nox.session(python=PYTHON)
def parity(session: nox.Session) -> None:
    """Run every model on every backend and compare with the goldens (-- --backend B --model M)."""
    _keras_parity(session, "parity")


@nox.session(python=PYTHON, default=False)
def golden(session: nox.Session) -> None:
    """Regenerate the float64 references and the backend snapshots in golden/."""
    _keras_parity(session, "golden")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Time the parity run against a naive sequential, eager, cache-less baseline."""
    _keras_parity(session, "bench")


@nox.session(python=PYTHON, default=False)
def images(session: nox.Session) -> None:
    """Build the backend images (-- --cuda for the CUDA variants, -- --base-image NAME)."""
    _keras_parity(session, "images")


@nox.session(python=PYTHON, default=False)
def zoo(session: nox.Session) -> None:
    """Every keras.applications architecture and the example models against float64 (-- --ci: a slice)."""
    _keras_parity(session, "zoo")


@nox.session(python=PYTHON, default=False)
def localize(session: nox.Session) -> None:
    """Every layer's error against float64 and the first layer where it jumps (-- --model M --backend B)."""
    _keras_parity(session, "localize")


@nox.session(python=PYTHON, default=False)
def sensitivity(session: nox.Session) -> None:
    """Per layer, the least change the verdict catches, confirmed by planted runs (-- --model M | --model-file F)."""
    _keras_parity(session, "sensitivity")


@nox.session(python=PYTHON, default=False)
def faults(session: nox.Session) -> None:
    """Plant the fault catalogue and print recall, false alarms and localization (-- --ci: the slice)."""
    _keras_parity(session, "faults")


@nox.session(python=PYTHON, default=False)
def repro(session: nox.Session) -> None:
    """Write one cell as a standalone script to hand upstream (-- lstm/lstm --backend jax)."""
    _keras_parity(session, "repro")


@nox.session(python=PYTHON, default=False)
def drift(session: nox.Session) -> None:
    """Run the drift matrix (-- --full, -- keras=3.14.1 jax=0.9.2, -- --bisect jax 0.8 0.10, -- --new, -- --merge D)."""
    _keras_parity(session, "drift")


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Merge result directories from several machines into one report (-- DIR DIR ...)."""
    _keras_parity(session, "report")


# `nox -s tests -- --foreign-cpu`: the tests as on another x86-64 CPU, one without AVX-512 or of
# another vendor (an AMD EPYC gets OpenBLAS's Haswell kernels), so that a test that holds only
# on this CPU's kernels fails here and not on a colleague's machine. Each library's widest
# instruction set is capped at AVX2; the backend processes the tests start inherit the cap.
FOREIGN_CPU = {
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy's BLAS
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # TensorFlow's and torch's oneDNN kernels
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised kernels
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's BLAS (MKL) on x86
}
# NumPy's own SIMD loops. NPY_DISABLE_CPU_FEATURES takes only names from NumPy's dispatch list
# (NumPy 2.4 skips any other with an ImportWarning, hidden by default), so the session's NumPy
# names them: its AVX-512 targets this CPU has (NumPy 2.4 here: X86_V4, AVX512_ICL, AVX512_SPR).
_NUMPY_AVX512 = (
    "import numpy._core._multiarray_umath as m; print(' '.join(t for t in m.__cpu_dispatch__ "
    "if m.__cpu_features__.get(t) and (t.startswith('AVX512') or t == 'X86_V4')))"
)


def _foreign_cpu(session: nox.Session) -> dict[str, str]:
    """The environment of `--foreign-cpu` (see FOREIGN_CPU)."""
    if _MACHINE != "x86_64":
        session.error(f"--foreign-cpu caps x86-64 kernels at AVX2; this machine is {platform.machine()}")
    env = dict(FOREIGN_CPU)
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa=AVX2".strip()  # JAX's XLA:CPU
    output = session.run("python", "-c", _NUMPY_AVX512, silent=True) or ""
    lines = output.strip().splitlines()
    if lines and lines[-1].strip():
        env["NPY_DISABLE_CPU_FEATURES"] = lines[-1].strip()
    return env


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The fast tests (-- -m slow: the end-to-end ones; -- --foreign-cpu: as on another CPU; CI runs all three)."""
    _harness(session, "tests")
    args, env = list(session.posargs), {}
    if args[:1] == ["--foreign-cpu"]:
        args, env = args[1:], _foreign_cpu(session)
        session.log("as on another CPU: " + " ".join(f"{k}={v}" for k, v in env.items()))
    # Coverage of the package by the tests' own process (a command a test runs as a subprocess
    # is not measured); the table lists the modules not fully covered.
    coverage = ["--cov=keras_parity", "--cov-report=term"]
    # The slowest tests named at the end: where the tiers' time goes (docs/measurements.md, "Timings").
    timing = ["--durations=15"]
    # The fast tier on every core (at most 4: each worker imports TensorFlow), a file's tests in
    # one worker, so a module's fixtures are made once. The end-to-end tier runs as its arguments
    # say (.ci/run: two files at a time; its backend processes already run side by side).
    fast = ["-q", "-m", "not slow", "-n", "auto", "--maxprocesses", "4", "--dist", "loadfile", "tests"]
    session.run("python", "-m", "pytest", *coverage, *timing, *(args or fast), env=env)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the Python code, mypy over the package ([tool.mypy] in pyproject.toml), hadolint on
    the Dockerfile, actionlint on the workflows."""
    _harness(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "--diff", ".")
    session.run("mypy")
    session.run("hadolint", "docker/Dockerfile")
    session.run(
        "actionlint",
        ".github/workflows/parity.yml",
        ".github/workflows/drift.yml",
        ".github/workflows/drift-new.yml",
        ".github/workflows/tests.yml",
    )


@nox.session(python=PYTHON, default=False)
def watch(session: nox.Session) -> None:
    """Run the watch list of upstream discrepancies on each backend (-- --update records it)."""
    _keras_parity(session, "watch")


@nox.session(python=PYTHON, default=False)
def noise(session: nox.Session) -> None:
    """Measure the float32 noise the built-in tolerances are derived from (models/noise.json)."""
    _keras_parity(session, "noise")


@nox.session(python=PYTHON, default=False)
def growth(session: nox.Session) -> None:
    """Measure every built-in layer's rounding growth, which localize's jump threshold R_JUMP is set above."""
    _keras_parity(session, "growth")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Compile the locks of requirements/pins.toml for every platform (-- NAME ... --platform P)."""
    if LOCK_PLATFORM is None:  # no harness lock here yet: uv alone compiles the locks
        session.install("uv==0.13.9")
    else:
        _harness(session)
    session.run("python", "-m", "keras_parity.lockfiles", *session.posargs)

"""Sessions of keras-parity. Pins live in requirements/pins.toml, locked to requirements/*.txt."""

from pathlib import Path

import nox

from keras_parity.envinfo import ROOT
from keras_parity.envs import find_links_args
from keras_parity.pins import lock_inputs

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["parity", "tests", "lint"]

PYTHON = "3.11"
BACKENDS = ("tensorflow", "jax", "torch")


def _harness(session: nox.Session, lock: str = "harness") -> None:
    session.install("--require-hashes", *find_links_args(), "-r", f"requirements/{lock}.txt")


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
def localize(session: nox.Session) -> None:
    """Every layer's error against float64 and the first layer where it jumps (-- --model M --backend B)."""
    _keras_parity(session, "localize")


@nox.session(python=PYTHON, default=False)
def drift(session: nox.Session) -> None:
    """Run the drift matrix (-- --full, -- keras=3.14.1 jax=0.9.2, -- --bisect jax 0.8.0 0.10.2)."""
    _keras_parity(session, "drift")


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Merge result directories from several machines into one report (-- DIR DIR ...)."""
    _keras_parity(session, "report")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests, the float64 reference against Keras, and a real parity run on all backends."""
    _harness(session, "tests")
    session.run("python", "-m", "pytest", *(session.posargs or ["-q", "tests"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the Python code, hadolint on the Dockerfile, actionlint on the workflow."""
    _harness(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "--diff", ".")
    session.run("hadolint", "docker/Dockerfile")
    session.run("actionlint", ".github/workflows/parity.yml")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Compile each lock of requirements/pins.toml into a hashed requirements/<name>.txt (-- NAME ...)."""
    _harness(session)
    inputs = lock_inputs()
    for name in session.posargs or inputs:
        if name not in inputs:
            session.error(f"no lock {name!r} in requirements/pins.toml; choose from {', '.join(inputs)}")
        # Compiled from a scratch folder so the lock's "via" lines name `<lock>.in`, not a path.
        scratch = Path(session.create_tmp())
        (scratch / f"{name}.in").write_text("\n".join(inputs[name]) + "\n")
        with session.chdir(scratch):
            session.run(
                "uv",
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--custom-compile-command",
                f"nox -s lock -- {name}",
                "--python-version",
                PYTHON,
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--no-emit-find-links",
                *find_links_args(),
                f"{name}.in",
                "-o",
                str(ROOT / "requirements" / f"{name}.txt"),
            )

"""Sessions of keras-parity. Pins live in requirements/*.in, locked to requirements/*.txt."""

import nox

from keras_parity.envs import find_links_args

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["parity", "tests", "lint"]

PYTHON = "3.11"
BACKENDS = ("tensorflow", "jax", "torch")
LOCKED = ("harness", "tests", "lint", *BACKENDS, *(f"{b}-cuda" for b in BACKENDS))


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
    """Recompile requirements/*.txt (hashed) from requirements/*.in."""
    _harness(session)
    for name in session.posargs or LOCKED:
        session.run(
            "uv",
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--python-version",
            PYTHON,
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--no-emit-find-links",
            *find_links_args(),
            f"requirements/{name}.in",
            "-o",
            f"requirements/{name}.txt",
        )

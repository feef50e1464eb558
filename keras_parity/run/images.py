"""Docker images per (backend, device), built and run through the Docker SDK for Python.

An image's tag carries a short hash of its lock (and of the Dockerfile), then one of the
sources it bakes in: a changed lock or source means a new tag, so a stale image is never
used silently. Builds are hermetic: wheels are
downloaded on the host into .wheelhouse/, the build context is assembled from the lock,
those wheels and the sources, and the build runs with no network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

from keras_parity.paths import CHECKOUT, DOCKER, MODELS, ROOT
from keras_parity.run import envs
from keras_parity.run.envs import EnvError, index_args, is_synced, mark_synced
from keras_parity.run.machine import lock_platform

DOCKERFILE = DOCKER / "Dockerfile"
WHEELHOUSE = ROOT / ".wheelhouse"
CONTEXTS = ROOT / ".cache" / "docker-context"


# The images are Linux of the host's architecture (Docker Desktop on an arm64 Mac runs
# linux/arm64), built from that platform's locks; Debian bookworm has glibc 2.36.
IMAGE_PLATFORM = lock_platform("linux", platform.machine()) or "linux-x86_64"
_GLIBC = 36


# Locks a rehearsal (keras_parity/rehearse.py) builds and runs images from, in place of the
# pinned ones; their images are tagged by their own lock's digest, so the pinned stay as they are.
_CANDIDATES: dict[tuple[str, str], Path] = {}
# The Python a candidate lock was made for, where not the host's (a drift cell whose releases
# need a newer one: keras_parity/drift/cellimage.py); its wheels are downloaded for that Python.
_PYTHONS: dict[Path, str] = {}


@contextlib.contextmanager
def candidate_locks(locks: dict[str, Path], device: str = "cpu", python: str | None = None):
    """Within the block, each named backend's image is the one built from its candidate lock
    (made for `python`, when given: its wheels are that Python's)."""
    _CANDIDATES.update({(b, device): lock for b, lock in locks.items()})
    _PYTHONS.update({lock: python for lock in locks.values() if python})
    try:
        yield
    finally:
        for b, lock in locks.items():
            _CANDIDATES.pop((b, device), None)
            _PYTHONS.pop(lock, None)


def lock_file(backend: str, device: str = "cpu") -> Path:
    """The lock an image of this host's architecture installs (a rehearsal's candidate's)."""
    return _CANDIDATES.get((backend, device)) or envs.lock_file(backend, device, IMAGE_PLATFORM)


def base_of(backend: str, device: str = "cpu") -> str | None:
    """The base image the current image of a backend was built on (its label)."""
    _, image = require(backend, device)
    return image.labels.get("io.keras-parity.base")


def _wheel_platforms() -> list[str]:
    """pip download's --platform values for the image: every manylinux tag its glibc runs."""
    arch = IMAGE_PLATFORM.removeprefix("linux-")
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(_GLIBC, 16, -1)] + [f"manylinux2014_{arch}"]
    return [a for t in tags for a in ("--platform", t)]


def _checkout() -> None:
    """The images build from a checkout's docker/ folder (an installed package has none)."""
    if not CHECKOUT:
        raise EnvError(
            "the images build from a checkout of keras-parity (its docker/ folder); clone it and run `nox -s images`"
        )


def engine():
    """The Docker engine's client; an EnvError (exit 3) naming the fix when none answers."""
    return _client()


def _client():
    _checkout()
    try:
        import docker
    except ImportError:
        raise EnvError("the Docker SDK for Python is missing; install it with `pip install docker`") from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise EnvError(
            f"no Docker daemon answers ({type(exc).__name__}); start one and set DOCKER_HOST (see docker/engine.sh)"
        ) from None
    return client


def lock_key(backend: str, device: str = "cpu") -> str:
    """'<device>-<hash of lock and Dockerfile>': what the dependency layers are built from."""
    if not lock_file(backend, device).exists():
        raise EnvError(
            f"no lock requirements/{IMAGE_PLATFORM}/{lock_file(backend, device).name}; create it with `nox -s lock`"
        )
    digest = hashlib.sha256(lock_file(backend, device).read_bytes() + DOCKERFILE.read_bytes()).hexdigest()[:12]
    return f"{device}-{digest}"


def image_tag(backend: str, device: str = "cpu") -> str:
    return f"keras-parity-{backend}:{lock_key(backend, device)}-src{_source_digest()}"


def _source_digest() -> str:
    """The runner and models baked into the image: an edited source needs a rebuilt image
    (seconds: the dependency layers are cached), never a stale one used silently."""
    h = hashlib.sha256()
    for path in sorted(p for d in ("keras_parity", "models") for p in (ROOT / d).rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:8]


def wheelhouse(backend: str, device: str = "cpu", log=print) -> Path:
    """Download every wheel of the lock on the host (verifying hashes); reused when complete."""

    candidate = _CANDIDATES.get((backend, device))
    dest = WHEELHOUSE / (f"candidate-{candidate.stem}" if candidate else f"{backend}-{device}")
    lock = lock_file(backend, device)
    if is_synced(dest, lock):
        return dest
    with envs.exclusive(dest):  # a second command waits for the first one's download
        if not is_synced(dest, lock):
            _download(backend, device, lock, dest, log)
            mark_synced(dest, lock)
    return dest


def _download(backend: str, device: str, lock: Path, dest: Path, log) -> None:
    from keras_parity.report.progress import watch

    dest.mkdir(parents=True, exist_ok=True)
    # pip writes each download into its temporary folder first (a private one here), then copies
    # it into dest: the bytes so far are dest's wheels and the downloads not yet copied.
    tmp = WHEELHOUSE / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    wanted = len(envs.locked(lock.read_text()))
    try:
        proc = watch(
            download_command(backend, device, dest), f"downloading the wheels of {lock.name} into {dest.name}",
            lambda: _bytes(dest, tmp), unit="bytes", env={**os.environ, "TMPDIR": str(tmp)}, log=log,
            note=lambda: f"{sum(1 for _ in dest.glob('*.whl'))}/{wanted} wheels",
        )  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0:
        raise EnvError(f"downloading the wheels for {backend}-{device} failed: {envs.last_line(proc.stderr)}")


def _bytes(dest: Path, tmp: Path) -> int:
    """Bytes of the wheels in dest, and of the files pip is still downloading (named as no wheel in dest)."""
    total, done = 0, set()
    for path in [*dest.glob("*.whl"), *tmp.rglob("*")]:
        with contextlib.suppress(OSError):  # pip moves and deletes files as it goes
            if path.is_file() and path.name not in done:
                total += path.stat().st_size
                done.add(path.name)
    return total


def download_command(backend: str, device: str, dest: Path) -> list[str]:
    """pip download of every wheel of the image's lock, for Linux of the image's architecture
    (whatever the host), from the same sources as a local environment (envs.index_args)."""
    lock = lock_file(backend, device)
    python = _PYTHONS.get(lock)  # else the host's, which the pinned locks are made for
    other = []
    if python:
        other = ["--python-version", python, "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}"]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "--only-binary=:all:",
        *_wheel_platforms(), *other, *index_args(lock.read_text(), tool="pip"),
        "-r", str(lock), "-d", str(dest),
    ]  # fmt: skip


def context(backend: str, device: str, wheels: Path) -> Path:
    """A build context holding exactly what the Dockerfile copies (hard links, no copies)."""
    ctx = CONTEXTS / f"{backend}-{device}"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    shutil.copy2(DOCKERFILE, ctx / "Dockerfile")
    shutil.copy2(lock_file(backend, device), ctx / "lock.txt")
    shutil.copytree(wheels, ctx / "wheels", copy_function=_link, ignore=shutil.ignore_patterns(".*"))
    # The models as the wheel lays them out, keras_parity/models (keras_parity/paths.py).
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "keras_parity", ctx / "keras_parity", ignore=skip)
    shutil.copytree(MODELS, ctx / "keras_parity" / "models", ignore=skip)
    return ctx


def _link(src, dst):
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def build(backend: str, device: str = "cpu", base_image: str | None = None, log=print) -> dict:
    """Build one image; returns {'tag', 'seconds', 'size_mb'}."""
    client = _client()
    tag = image_tag(backend, device)
    wheels = wheelhouse(backend, device, log=log)
    ctx = context(backend, device, wheels)
    args = {"BACKEND": backend, "DEVICE": device}
    if base_image:
        args["BASE_IMAGE"] = base_image
    t0 = time.perf_counter()
    lines: list[str] = []
    try:
        failure = _stream_build(client, ctx, tag, args, lines, log)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    if failure:
        (CONTEXTS.parent / f"build-{backend}-{device}.log").write_text("\n".join(lines) + "\n")
        raise EnvError(f"building {tag} failed: {failure[:300]} (log: .cache/build-{backend}-{device}.log)")
    seconds = time.perf_counter() - t0
    return {"tag": tag, "seconds": seconds, "size_mb": client.images.get(tag).attrs["Size"] / 1e6}


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")


def _stream_build(client, ctx: Path, tag: str, args: dict, lines: list[str], log) -> str | None:
    """Build through the SDK's low-level API, its steps on a bar (or, without a terminal, each
    step as a log line); returns the failing step's message, or None."""
    import docker
    from keras_parity.report.progress import activity

    with activity(f"building {tag}", unit="steps", log=log) as act:
        try:
            stream = client.api.build(
                path=str(ctx), tag=tag, buildargs=args, network_mode="none", rm=True, forcerm=True, decode=True
            )
            for chunk in stream:
                if "error" in chunk:
                    lines.append(chunk["error"].strip())
                    return lines[-1] or "the engine gave no reason"
                for line in chunk.get("stream", "").splitlines():
                    if line.strip():
                        lines.append(line)
                        step = _STEP.match(line)
                        if step:
                            act.update(int(step[1]) - 1, total=int(step[2]), note=step[3][:60])
                            if act.bars is None:
                                log(f"  {line[:150]}")
        except docker.errors.APIError as exc:
            lines.append(str(exc))
            return str(exc.explanation or exc).splitlines()[0]
        act.update(act.total, note="")
    return None


def require(backend: str, device: str = "cpu"):
    """The image built from the current lock, or a one-line error saying how to build it."""
    import docker

    client = _client()
    tag = image_tag(backend, device)
    try:
        return client, client.images.get(tag)
    except docker.errors.ImageNotFound:
        others = [t for img in client.images.list(name=f"keras-parity-{backend}") for t in img.tags]
        stale = f" (found {', '.join(others)}, built from another lock or source)" if others else ""
        raise EnvError(f"image {tag} is missing{stale}; build it with `nox -s images`") from None


def upstream_size_mb(name: str) -> float | None:
    """Size of an image already in the engine (e.g. a pulled tensorflow/tensorflow), else None."""
    import docker

    try:
        return _client().images.get(name).attrs["Size"] / 1e6
    except docker.errors.ImageNotFound:
        return None


def prune(backends, devices=("cpu", "cuda"), log=print) -> float:
    """Remove keras-parity images and cache volumes no current lock or source builds; returns
    the MB of image layers freed (layers shared by images are counted once).

    Only what this project labels or names is touched; the current images and their volumes stay.
    Untagged build stages are left alone: the current images' dependency stages are among them,
    and they are what makes a rebuild after a source change take seconds (`docker image prune`
    clears them all).
    """
    client = _client()
    keep_tags = {image_tag(b, d) for b in backends for d in devices if lock_file(b, d).exists()}
    keep_volumes = {
        f"keras-parity-cache-{b}-{lock_key(b, d)}" for b in backends for d in devices if lock_file(b, d).exists()
    }
    before = client.df()["LayersSize"]
    for image in client.images.list(filters={"label": "io.keras-parity.backend"}):
        if keep_tags & set(image.tags):
            continue
        for tag in image.tags or [image.id]:
            log(f"removing image {tag}")
            client.images.remove(tag, force=True, noprune=False)
    for volume in client.volumes.list():
        if volume.name.startswith("keras-parity-cache-") and volume.name not in keep_volumes:
            log(f"removing volume {volume.name}")
            volume.remove(force=True)
    return (before - client.df()["LayersSize"]) / 1e6

"""A backend's runner in its Docker image (keras_parity/run/images.py builds the images): a
process the launcher polls and kills as it does a local one."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from keras_parity.errors import UsageError
from keras_parity.golden.commit import process_alive
from keras_parity.run import images  # called through the module, so a test can stand in a CPU image for a GPU one
from keras_parity.run.envs import EnvError

RUN_UID = 10001  # the image's user (docker/Dockerfile), which owns its /cache volume
MEMORY_ENV, DEFAULT_MEMORY = "KERAS_PARITY_CONTAINER_MEMORY", "8g"  # TF training ResNet50 peaks at 2.3 GB
PIDS_ENV, DEFAULT_PIDS = "KERAS_PARITY_CONTAINER_PIDS", 4096  # threads count: TF and XLA pools scale with cores


def limits() -> dict:
    """The memory and pids limits of every container, from the environment or the defaults."""
    memory = os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY
    if not re.fullmatch(r"[1-9][0-9]*[kmg]?", memory.lower()):
        raise UsageError(f"{MEMORY_ENV}={memory!r} is not a size; give bytes or a size such as 8g or 16384m")
    pids = os.environ.get(PIDS_ENV) or str(DEFAULT_PIDS)
    if not re.fullmatch(r"[1-9][0-9]*", pids):
        raise UsageError(f"{PIDS_ENV}={pids!r} is not a count; give a whole number such as {DEFAULT_PIDS}")
    return {"mem_limit": memory.lower(), "memswap_limit": memory.lower(), "pids_limit": int(pids)}


def share_with_container(out: Path) -> str:
    """Let the image's user write `out` through the folder's own group, never through the world
    bit: the container runs as uid 10001 with that group. Returns the container's user."""
    mode = out.stat().st_mode & 0o7777
    out.chmod((mode | 0o070) & ~0o002)
    return f"{RUN_UID}:{out.stat().st_gid}"


OWNER = "io.keras-parity.owner"  # host:pid of the command that started a container


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_orphans(client) -> int:
    """Remove this host's backend containers whose command is gone (killed with SIGKILL, it could
    not stop them); returns how many. A container of a live command, or another host's, stays."""
    host, reaped = socket.gethostname(), 0
    for c in client.containers.list(all=True, filters={"label": "io.keras-parity.run"}):
        where, _, pid = c.labels.get(OWNER, "").rpartition(":")
        if where == host and pid.isdigit() and not process_alive(int(pid)):
            c.remove(force=True)
            reaped += 1
    return reaped


class ContainerRun:
    """One backend's runner in its image: no network, a read-only root filesystem, the results
    directory as the only host mount, and a Docker volume of this image's own for the caches
    a local run keeps in .cache/ (naive runs get none)."""

    def __init__(self, backend: str, out: Path, args: list[str], env: dict[str, str], device: str = "cpu", mounts=()):
        import docker

        bounds = limits()  # a bad setting stops the first backend, before any container starts
        client, image = images.require(backend, device)
        reap_orphans(client)  # what a run killed with SIGKILL left running
        user = share_with_container(out)
        volumes = {str(out.resolve()): {"bind": "/results", "mode": "rw"}}
        volumes.update({m: {"bind": m, "mode": "ro"} for m in mounts})  # a user model's folders
        if "--naive" not in args:
            # One volume per lock: cache entries are keyed by content (JAX) or by generator
            # (weights), so an image rebuilt for an edited source reuses them safely.
            cache = f"keras-parity-cache-{backend}-{images.lock_key(backend, device)}"
            volumes[cache] = {"bind": "/cache", "mode": "rw"}
            args = [*args, "--cache-dir", "/cache"]
        gpus = [] if device == "cpu" else [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        try:
            self.container = self._run(client, image, backend, args, env, volumes, gpus, user, bounds)
        except docker.errors.APIError as exc:
            if gpus:
                raise EnvError(
                    f"the {backend} {device} container cannot get a GPU ({exc.explanation or exc}); run it on a "
                    "host with an NVIDIA driver and the NVIDIA container toolkit, or use --device cpu"
                ) from None
            raise EnvError(f"the {backend} container did not start: {exc.explanation or exc}") from None
        self.log_path = out / f"{backend}.log"
        self.returncode: int | None = None

    @staticmethod
    def _run(client, image, backend, args, env, volumes, gpus, user, bounds):
        container = client.containers.create(
            image.id,
            ["--backend", backend, "--out", "/results", *args],
            user=user,  # the image's uid, with the results folder's group (share_with_container)
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            **bounds,
            tmpfs={"/tmp": "rw,size=1g"},
            volumes=volumes,
            environment=env,
            labels={"io.keras-parity.run": backend, OWNER: owner()},
            device_requests=gpus,
        )
        try:
            container.start()
        except BaseException:
            container.remove(force=True)  # created but never started (e.g. no GPU runtime)
            raise
        return container

    def kill(self) -> None:
        """Stop the container (a backend over its time limit) and keep what it logged."""
        try:
            self.container.kill()
            self.log_path.write_bytes(self.container.logs(stdout=True, stderr=True))
        finally:
            self.container.remove(force=True)
            self.returncode = -9

    def poll(self) -> int | None:
        if self.returncode is None:
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                self.returncode = self.container.wait()["StatusCode"]
                self.log_path.write_bytes(self.container.logs(stdout=True, stderr=True))
                self.container.remove(force=True)
        return self.returncode

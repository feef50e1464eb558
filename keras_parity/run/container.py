"""A backend's runner in its Docker image (keras_parity/run/images.py builds the images): a
process the launcher polls and kills as it does a local one."""

from __future__ import annotations

from pathlib import Path

from keras_parity.run import images  # called through the module, so a test can stand in a CPU image for a GPU one
from keras_parity.run.envs import EnvError


class ContainerRun:
    """One backend's runner in its image: no network, a read-only root filesystem, the results
    directory as the only host mount, and a Docker volume of this image's own for the caches
    a local run keeps in .cache/ (naive runs get none)."""

    def __init__(self, backend: str, out: Path, args: list[str], env: dict[str, str], device: str = "cpu", mounts=()):
        import docker

        client, image = images.require(backend, device)
        out.chmod(0o777)  # the image's user (uid 10001) writes its results here
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
            self.container = self._run(client, image, backend, args, env, volumes, gpus)
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
    def _run(client, image, backend, args, env, volumes, gpus):
        container = client.containers.create(
            image.id,
            ["--backend", backend, "--out", "/results", *args],
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "rw,size=1g"},
            volumes=volumes,
            environment=env,
            labels={"io.keras-parity.run": backend},
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

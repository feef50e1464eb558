"""The backend images: containers give the local run's bits; Docker faults give one-line errors.

Skipped where no Docker daemon answers (DOCKER_HOST); .ci/run starts one and builds the images.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from keras_parity.judge.evaluate import evaluate
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import BACKENDS
from keras_parity.run import container, images
from keras_parity.run.envs import EnvError
from keras_parity.run.flags import RunFlags
from keras_parity.run.launch import load_run, run_backends

BUILTIN = builtin_registry()

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _daemon():
    try:
        images._client()
    except EnvError:
        return False
    return True


docker_only = pytest.mark.skipif(not _daemon(), reason="no Docker daemon answers (see docker/engine.sh)")


def test_no_daemon_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EnvError, match=r"no Docker daemon answers .*DOCKER_HOST"):
        images._client()
    runs = run_backends(["torch"], ["linear"], tmp_path, docker=True, registry=BUILTIN, log=lambda *a: None)
    assert "no Docker daemon answers" in runs["torch"].error


@docker_only
def test_container_outputs_are_bit_identical_to_the_local_run(parity, tmp_path):
    models = list(BUILTIN)
    _, _, local = parity  # the session's local run of everything (conftest.py)
    boxed = run_backends(
        list(BACKENDS), models, tmp_path / "docker", docker=True, registry=BUILTIN, log=lambda *a: None
    )
    for b in BACKENDS:
        assert local[b].error is None and boxed[b].error is None, (local[b].error, boxed[b].error)
        assert local[b].arrays.keys() == boxed[b].arrays.keys()
        for key, value in local[b].arrays.items():
            assert value.tobytes() == boxed[b].arrays[key].tobytes(), f"{b} {key}"
        assert boxed[b].versions == local[b].versions | {"python": boxed[b].versions["python"]}
        assert boxed[b].provenance.git_commit == local[b].provenance.git_commit
    assert all(c.status == "pass" for c in evaluate(boxed, models, BUILTIN))


# What the Dockerfile leaves out of the images' venv (the runner never imports it): printed by
# the container, one path a line, so a wheel that brings it back names itself in the failure.
_LEFT_OUT = (
    "find /opt/venv/lib -type d -name '*.dist-info' -prune"
    " -o -type d \\( -name include -o -name tests \\) -print -prune -o -type f -name '*.a' -print;"
    " ls -d /opt/venv/lib/python3*/site-packages/pip /opt/venv/lib/python3*/site-packages/clang 2>/dev/null;"
    " true"
)


@docker_only
@pytest.mark.parametrize("backend", BACKENDS)
def test_image_holds_no_headers_static_libraries_test_suites_or_pip(backend):
    client, image = images.require(backend)
    found = client.containers.run(
        image.id, entrypoint=["sh", "-c", _LEFT_OUT], network_mode="none", read_only=True, remove=True
    )
    assert not found.decode().split(), found.decode()[:2000]
    if backend == "tensorflow":  # its budget: 1.5 GB, counted as `nox -s images` does (1 MB = 10^6 bytes)
        assert image.attrs["Size"] / 1e6 <= 1500, f"the tensorflow image is {image.attrs['Size'] / 1e6:.0f} MB"


@docker_only
def test_user_model_file_runs_in_the_containers_with_the_local_bits(tmp_path):
    """A user's .keras file and inputs, seen read-only at their own paths inside each container."""
    from keras_parity.registry import usermodel

    example = ROOT / "examples" / "shapes"
    source = usermodel.from_file(example / "shapes.keras", example / "inputs.npz", None, None)
    registry, name = BUILTIN.with_users({source.name: usermodel.spec(source)}), source.name
    local = run_backends(list(BACKENDS), [name], tmp_path / "local", registry=registry, log=lambda *a: None)
    boxed = run_backends(
        list(BACKENDS), [name], tmp_path / "docker", docker=True, registry=registry, log=lambda *a: None
    )
    for b in BACKENDS:
        assert boxed[b].error is None and not boxed[b].errors, boxed[b].errors
        assert local[b].arrays.keys() == boxed[b].arrays.keys() and local[b].arrays
        for key, value in local[b].arrays.items():
            assert value.tobytes() == boxed[b].arrays[key].tobytes(), f"{b} {key}"


@docker_only
def test_image_from_another_lock_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "image_tag", lambda b, d="cpu": f"keras-parity-{b}:{d}-000000000000")
    with pytest.raises(
        EnvError, match=r"image keras-parity-jax:cpu-000000000000 is missing.*another lock.*nox -s images"
    ):
        images.require("jax")
    runs = run_backends(["jax", "torch"], ["linear"], tmp_path, docker=True, registry=BUILTIN, log=lambda *a: None)
    assert "is missing" in runs["jax"].error and "is missing" in runs["torch"].error


@docker_only
def test_missing_image_for_one_backend_leaves_the_others_running(monkeypatch, tmp_path):
    real = images.image_tag
    monkeypatch.setattr(images, "image_tag", lambda b, d="cpu": "keras-parity-none:cpu-0" if b == "jax" else real(b, d))
    runs = run_backends(["jax", "torch"], ["linear"], tmp_path, docker=True, registry=BUILTIN, log=lambda *a: None)
    assert "keras-parity-none:cpu-0 is missing" in runs["jax"].error
    assert runs["torch"].error is None and runs["torch"].arrays


@docker_only
def test_container_killed_mid_run_is_reported(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = container.ContainerRun("torch", out, ["--model", "resnet50"], {})
    time.sleep(2)
    run.container.kill()
    while run.poll() is None:
        time.sleep(0.1)
    assert run.returncode == 137
    result = load_run(out, "torch", run.returncode)
    assert result.error.startswith("the torch runner was killed by SIGKILL (exit code 137; out of its memory limit?)")
    client = images._client()
    assert not client.containers.list(all=True, filters={"label": "io.keras-parity.run"})


@docker_only
def test_the_containers_of_a_command_killed_with_sigkill_are_removed_by_the_next(monkeypatch, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a command that has ended: its containers are orphans
    live, orphan = tmp_path / "live", tmp_path / "orphan"
    live.mkdir()
    orphan.mkdir()
    kept = container.ContainerRun("jax", live, ["--model", "resnet50"], {})
    monkeypatch.setattr(container, "owner", lambda: f"{socket.gethostname()}:{gone.pid}")
    left = container.ContainerRun("jax", orphan, ["--model", "resnet50"], {})
    try:
        client = images._client()
        assert container.reap_orphans(client) == 1
        ids = {c.id for c in client.containers.list(all=True, filters={"label": "io.keras-parity.run"})}
        assert kept.container.id in ids and left.container.id not in ids
    finally:
        kept.kill()


@docker_only
def test_a_container_drops_every_capability_runs_within_limits_and_shares_no_folder_with_the_world(
    monkeypatch, tmp_path
):
    monkeypatch.setenv(container.MEMORY_ENV, "6g")
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # what an earlier run left: the run takes the world's write bit away
    run = container.ContainerRun("jax", out, ["--model", "linear"], {})
    run.container.reload()
    host, config = run.container.attrs["HostConfig"], run.container.attrs["Config"]
    while run.poll() is None:
        time.sleep(0.1)
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == container.DEFAULT_PIDS and host["Memory"] == 6 * 1024**3
    assert config["User"] == f"10001:{out.stat().st_gid}" and host["ReadonlyRootfs"]
    assert out.stat().st_mode & 0o002 == 0
    result = load_run(out, "jax", run.returncode)
    assert run.returncode == 0 and result.error is None and result.arrays


@docker_only
def test_gpu_asked_for_on_an_engine_without_one_is_a_one_line_error(monkeypatch, tmp_path):
    real = images.require
    monkeypatch.setattr(images, "require", lambda b, d="cpu": real(b, "cpu"))  # the CPU image, asked for a GPU
    asked = RunFlags(device="cuda")
    runs = run_backends(
        ["torch", "jax"], ["linear"], tmp_path, asked, docker=True, registry=BUILTIN, log=lambda *a: None
    )
    for b in ("torch", "jax"):
        assert "cannot get a GPU" in runs[b].error and "--device cpu" in runs[b].error
        assert "\n" not in runs[b].error
    assert not images._client().containers.list(all=True, filters={"label": "io.keras-parity.run"})


def test_image_tag_follows_the_lock_and_the_baked_sources(monkeypatch, tmp_path):
    for d in ("keras_parity", "models"):
        shutil.copytree(images.ROOT / d, tmp_path / d, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(images, "ROOT", tmp_path)
    before = images.image_tag("torch")
    assert before.startswith("keras-parity-torch:cpu-") and "-src" in before
    (tmp_path / "models" / "bn_mlp.py").write_text((tmp_path / "models" / "bn_mlp.py").read_text() + "\n# edited\n")
    after = images.image_tag("torch")
    assert after != before and after.split("-src")[0] == before.split("-src")[0]
    with pytest.raises(EnvError, match=rf"no lock requirements/{images.IMAGE_PLATFORM}/torch-rocm.txt; create it with"):
        images.image_tag("torch", "rocm")


def _buildkit_cli() -> list[str] | None:
    """A docker client that builds with BuildKit: `docker buildx build`, or Debian's 20.10
    client, whose `DOCKER_BUILDKIT=1 docker build` uses the engine's own BuildKit."""
    for cli in dict.fromkeys(c for c in (shutil.which("docker"), "/usr/bin/docker") if c and os.access(c, os.X_OK)):
        try:
            if subprocess.run([cli, "buildx", "version"], capture_output=True, timeout=30).returncode == 0:
                return [cli, "buildx", "build", "--load"]
            version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if version.startswith("Docker version 20.10"):
            return [cli, "build"]
    return None


@docker_only
@pytest.mark.skipif(_buildkit_cli() is None, reason="no docker client here builds with BuildKit")
def test_dockerfile_builds_with_buildkit_and_gives_the_same_bits(tmp_path):
    classic = images.require("jax")[1]
    base = classic.labels["io.keras-parity.base"]
    args = ["--network", "none", "--build-arg", "BACKEND=jax", "--build-arg", "DEVICE=cpu"]
    if base:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    tag = "keras-parity-jax:buildkit-check"
    ctx = images.context("jax", "cpu", images.wheelhouse("jax", log=lambda *a: None))
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    client = images._client()
    try:
        done = subprocess.run([*_buildkit_cli(), *args, "-t", tag, str(ctx)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "BuildKit" in done.stderr or "#1 " in done.stderr, "the build did not go through BuildKit"
        outs = {}
        for name, image in (("classic", classic.id), ("buildkit", tag)):
            out = tmp_path / name
            out.mkdir(mode=0o777)
            out.chmod(0o777)
            client.containers.run(
                image,
                ["--backend", "jax", "--out", "/results", "--model", "linear"],
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": "rw"},
                volumes={str(out): {"bind": "/results", "mode": "rw"}},
                remove=True,
            )
            outs[name] = load_run(out, "jax", 0)
        assert outs["buildkit"].error is None and outs["buildkit"].arrays
        for key, value in outs["classic"].arrays.items():
            assert value.tobytes() == outs["buildkit"].arrays[key].tobytes(), key
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
        if client.images.list(name=tag):
            client.images.remove(tag, force=True)
        client.api.prune_builds()  # BuildKit's own cache, which the classic builder never uses


@docker_only
def test_a_rehearsal_in_docker_builds_its_candidate_image_and_leaves_the_pinned_one(tmp_path):
    import json

    from helpers import cli

    pinned = images.image_tag("jax")
    args = ("--with", "keras==3.14.1", "--model", "linear", "--backend", "jax", "--docker", "--out", str(tmp_path))
    done = cli("parity", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "building the candidate jax image" in done.stdout and "keras 3.15.1 -> 3.14.1" in done.stdout
    cells = json.loads((tmp_path / "rehearse" / "rehearsal.json").read_text())["cells"]
    assert len(cells) == 13 and all(c["verdict"] == ["pass", "pass"] for c in cells)
    assert images.image_tag("jax") == pinned and images.require("jax")[1].tags

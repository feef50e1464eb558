"""Running on the user's machine as it is: platform keys that separate CPUs, a snapshot
distance that means something near zero, torch from its index or a local folder, a lock per
platform, and a noxfile any nox can load."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, cli

from keras_parity import golden
from keras_parity.judge.numerics import scaled_ulp, ulp_distance
from keras_parity.run import envs, images, machine
from keras_parity.run.envs import PYTORCH_CPU_INDEX, EnvError

INTEL = {
    "arch": "x86_64",
    "vendor": "intel",
    "model_name": "Intel(R) Xeon(R) Processor",
    "family": "6",
    "model": "143",
    "stepping": "8",
    "flags": ["avx", "avx2", "avx512_bf16", "avx512f", "amx_tile", "fma"],
    "caches": {"L1d": "48K", "L2": "2048K"},
}
AMD = {**INTEL, "vendor": "amd", "model_name": "AMD EPYC 9R14", "family": "25", "model": "17", "stepping": "1",
       "flags": ["avx", "avx2", "avx512_bf16", "avx512f", "fma"], "caches": {"L1d": "32K", "L2": "1024K"}}  # fmt: skip


# --- platform keys ---------------------------------------------------------------------


def test_cpus_that_pick_different_kernels_get_different_keys():
    key = machine.cpu_key(INTEL)
    assert key.startswith("cpu-x86_64-intel-") and machine.cpu_key(dict(INTEL)) == key
    assert machine.cpu_key(AMD).startswith("cpu-x86_64-amd-")
    for change in (
        {"flags": INTEL["flags"][:-1]},  # one extension fewer (no FMA: other kernels)
        {"model": "207"},
        {"caches": {"L1d": "48K", "L2": "1024K"}},  # the blocking of GEMM/convolution kernels
    ):
        assert machine.cpu_key({**INTEL, **change}) != key, change


def test_an_isa_cap_keys_by_the_cap_and_ignores_the_flags_above_it():
    capped = machine.cpu_key(INTEL, "avx2")
    assert capped.startswith("cpu-x86_64-cap-avx2-intel-") and capped != machine.cpu_key(INTEL)
    no_amx = {**INTEL, "flags": [f for f in INTEL["flags"] if not f.startswith(("amx", "avx512"))]}
    assert machine.cpu_key(no_amx, "avx2") == capped  # nothing above AVX2 can be used under the cap
    assert machine.cpu_key(AMD, "avx2") != capped  # another CPU stays another key (docs/concepts.md: ISA caps)


def test_this_machine_has_a_key_with_readable_facts():
    cpu = machine.cpu_identity()
    assert cpu["arch"] and cpu["vendor"] and isinstance(cpu["flags"], list)
    key = machine.platform_key("cpu", None)
    assert key == machine.cpu_key(cpu) and key.startswith(f"cpu-{cpu['arch']}-")
    gpu = {"model": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "driver": "580.65", "cuda": "13.0"}
    assert machine.platform_key("gpu", gpu).startswith("gpu-nvidia-a100-sxm4-40gb-sm80-")
    assert machine.platform_key("gpu", gpu) != machine.platform_key("gpu", {**gpu, "driver": "590.1"})


def test_arm_linux_and_apple_silicon_are_identified_too(monkeypatch):
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    neoverse = {"CPU implementer": "0x41", "CPU part": "0xd40", "CPU variant": "0x1",
                "Features": "fp asimd asimddp sve i8mm bf16 svebf16 crc32 atomics"}  # fmt: skip
    monkeypatch.setattr(machine, "_cpuinfo", lambda: neoverse)
    cpu = machine.cpu_identity()
    assert cpu["vendor"] == "arm" and cpu["part"] == "0xd40"
    assert cpu["flags"] == ["asimd", "asimddp", "bf16", "i8mm", "sve", "svebf16"]  # crc32, atomics: no kernel choice
    assert machine.cpu_key(cpu).startswith("cpu-aarch64-arm-")
    monkeypatch.setattr(machine.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(machine.platform, "system", lambda: "Darwin")
    feats = {f"hw.optional.arm.FEAT_{f}": on for f, on in (("BF16", "1"), ("I8MM", "1"), ("SME", "0"))}
    sysctl = {"machdep.cpu.brand_string": "Apple M2", "hw.perflevel0.l2cachesize": "16777216", **feats}
    monkeypatch.setattr(machine, "_sysctl", lambda *names: {n: sysctl[n] for n in names if n in sysctl})
    cpu = machine.cpu_identity()
    assert (cpu["vendor"], cpu["model_name"], cpu["flags"]) == ("apple", "Apple M2", ["bf16", "i8mm"])
    assert machine.cpu_key(cpu).startswith("cpu-aarch64-apple-") and cpu["caches"] == {"L2": "16777216"}


def _snapshot(root: Path, key: str, cpu: dict, value: float = 1.0) -> None:
    golden.write_npz(golden.snapshot_path("m", key, "jax", root), {"c/predict/output": np.float32([value])})
    golden.write_json(golden.snapshot_path("m", key, "jax", root).with_suffix(".json"), {"device": "cpu", "cpu": cpu})


def test_the_nearest_other_platform_is_chosen_and_never_read_as_its_own(tmp_path):
    here = {**AMD, "model": "160"}  # an AMD CPU without snapshots of its own
    _snapshot(tmp_path, machine.cpu_key(INTEL), INTEL)
    _snapshot(tmp_path, machine.cpu_key(AMD), AMD)
    path, where = golden.find_snapshot("m", machine.cpu_key(here), "jax", {**here, "isa_cap": None}, tmp_path)
    assert where == "other-platform" and path.parent.name == machine.cpu_key(AMD)
    path, where = golden.find_snapshot("m", machine.cpu_key(INTEL), "jax", {**INTEL, "isa_cap": None}, tmp_path)
    assert where == "same" and path.parent.name == machine.cpu_key(INTEL)
    assert golden.find_snapshot("m", "k", "torch", {}, tmp_path) == (None, "missing")


# --- the distance against a snapshot ---------------------------------------------------


def test_scaled_ulp_reads_in_steps_of_the_arrays_largest_value():
    a = np.float32([1.0, 1e-30, -0.5])
    assert scaled_ulp(a, a.copy()) == 0.0
    tiny = np.float32([1.0, 0.0, -0.5])  # 1e-30 against 0: 2e8 ULPs element-wise
    assert ulp_distance(a, tiny).max() > 10**8 and scaled_ulp(a, tiny) < 1e-20
    step = np.float32([np.nextafter(np.float32(1.0), np.float32(2.0)), 1e-30, -0.5])
    assert scaled_ulp(step, a) == pytest.approx(1.0)
    assert scaled_ulp(np.float32([np.nan, 1.0]), np.float32([0.0, 1.0])) == float("inf")
    assert scaled_ulp(np.float32([np.nan, 1.0]), np.float32([np.nan, 1.0])) == 0.0


def test_parity_on_a_cpu_without_snapshots_reports_other_platform_and_golden_records_its_own(tmp_path):
    """Goldens whose only snapshots come from another CPU: every cell passes and reads
    'other-platform', no figure as if it were its own; `golden --snapshots-only` then records
    this machine's, leaving the references and the other CPU's snapshots byte for byte."""
    goldens = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN / "linear", goldens / "linear", ignore=shutil.ignore_patterns("*.obtained.npz"))
    here = machine.platform_key("cpu", None)
    other = machine.cpu_key(AMD if machine.cpu_identity()["vendor"] != "amd" else INTEL)
    snaps = goldens / "linear" / "snapshots"
    shutil.rmtree(snaps)
    # an uncapped snapshot of the checked-in goldens, relabelled as another CPU's
    recorded = next(p for p in sorted((golden.GOLDEN / "linear" / "snapshots").iterdir()) if "-cap-" not in p.name)
    shutil.copytree(recorded, snaps / other)
    for meta_file in (snaps / other).glob("*.json"):
        meta = json.loads(meta_file.read_text())
        meta.update(platform=other, cpu=AMD if "amd" in other else INTEL)
        meta_file.write_text(json.dumps(meta))
    args = ["--model", "linear", "--backend", "jax", "--golden-dir", str(goldens)]
    proc = cli("parity", *args, "--no-training", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cells = json.loads((tmp_path / "out" / "parity.json").read_text())["cells"]
    assert cells and all(c["snapshot"] == "other-platform" and c["snapshot_platform"] == other for c in cells)
    assert "nox -s golden -- --snapshots-only" in proc.stdout
    assert "other-platform:" in (tmp_path / "out" / "parity-table.txt").read_text()  # the full table's column

    before = {p: p.read_bytes() for p in goldens.rglob("*") if p.is_file()}
    made = cli("golden", "--snapshots-only", *args, "--out", str(tmp_path / "g"))
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-2000:]
    after = {p: p.read_bytes() for p in goldens.rglob("*") if p.is_file()}
    assert {p: b for p, b in after.items() if p in before} == before  # nothing rewritten
    assert sorted(p.name for p in set(after) - set(before)) == ["jax.json", "jax.npz"]
    assert (snaps / here / "jax.npz").exists()
    again = cli("parity", *args, "--no-training", "--out", str(tmp_path / "out2"))
    cells = json.loads((tmp_path / "out2" / "parity.json").read_text())["cells"]
    assert again.returncode == 0 and all(c["snapshot"] == "identical" for c in cells)


def test_snapshots_only_refuses_runs_of_another_model(tmp_path):
    goldens = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN / "linear", goldens / "linear")
    meta_file = goldens / "linear" / "reference.json"
    meta = json.loads(meta_file.read_text())
    next(iter(meta["builders"].values()))["weights_sha256"] = "0" * 16
    meta_file.write_text(json.dumps(meta))
    before = {p: p.read_bytes() for p in goldens.rglob("*") if p.is_file()}
    proc = cli("golden", "--snapshots-only", "--model", "linear", "--backend", "jax", "--golden-dir", str(goldens),
               "--out", str(tmp_path / "g"))  # fmt: skip
    assert proc.returncode == 1
    assert "are not the goldens' ones; regenerate everything with `nox -s golden`" in proc.stdout
    assert {p: p.read_bytes() for p in goldens.rglob("*") if p.is_file()} == before


# --- where the wheels come from --------------------------------------------------------


@pytest.fixture
def no_wheel_folder(monkeypatch):
    for var in ("KERAS_PARITY_FIND_LINKS", "PIP_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(envs, "_pip_config_find_links", lambda: "")


def test_torch_comes_from_the_pytorch_cpu_index_by_default(no_wheel_folder):
    lock = envs.lock_file("torch", platform="linux-x86_64")
    cmd = envs.sync_command(lock, Path("/env/bin/python"))
    i = cmd.index("--extra-index-url")
    assert cmd[i + 1] == PYTORCH_CPU_INDEX == "https://download.pytorch.org/whl/cpu"
    assert cmd[cmd.index("--index-strategy") + 1] == "unsafe-best-match"
    assert "--require-hashes" in cmd and cmd[-1] == str(lock) and "--find-links" not in cmd
    for other in ("jax", "tensorflow"):  # nothing of theirs is on that index
        assert "--extra-index-url" not in envs.sync_command(envs.lock_file(other, platform="linux-x86_64"), Path("p"))


def test_a_local_wheel_folder_replaces_the_index_when_it_holds_the_wheel(monkeypatch, no_wheel_folder, tmp_path):
    lock = envs.lock_file("torch", platform="linux-x86_64")
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    cmd = envs.sync_command(lock, Path("p"))
    assert cmd[cmd.index("--find-links") + 1] == str(tmp_path) and "--extra-index-url" not in cmd
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("KERAS_PARITY_FIND_LINKS", str(empty))  # takes precedence, lacks the wheel
    cmd = envs.sync_command(lock, Path("p"))
    assert cmd[cmd.index("--find-links") + 1] == str(empty) and PYTORCH_CPU_INDEX in cmd


def test_image_wheels_are_downloaded_for_linux_from_the_same_sources(no_wheel_folder, tmp_path):
    cmd = images.download_command("torch", "cpu", tmp_path)
    assert cmd[cmd.index("--extra-index-url") + 1] == PYTORCH_CPU_INDEX and "--index-strategy" not in cmd
    arch = images.IMAGE_PLATFORM.removeprefix("linux-")
    platforms = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"]
    assert f"manylinux_2_28_{arch}" in platforms and f"manylinux2014_{arch}" in platforms
    assert "--require-hashes" in cmd and cmd[cmd.index("-r") + 1].endswith(f"{images.IMAGE_PLATFORM}/torch.txt")


def test_the_cuda_images_of_other_backends_take_cpu_torch_from_its_index(no_wheel_folder):
    for backend in ("tensorflow", "jax"):
        lock = envs.lock_file(backend, "cuda", platform="linux-x86_64")
        assert "torch==2.13.0+cpu" in lock.read_text()
        assert PYTORCH_CPU_INDEX in envs.index_args(lock.read_text(), tool="pip")


# --- a lock per platform ---------------------------------------------------------------


def test_each_platform_takes_its_own_lock(monkeypatch):
    assert machine.lock_platform("Linux", "x86_64") == "linux-x86_64"
    assert machine.lock_platform("Linux", "aarch64") == "linux-aarch64"
    assert machine.lock_platform("Darwin", "arm64") == "macos-arm64"
    assert machine.lock_platform("Windows", "AMD64") is None
    for plat in ("linux-x86_64", "linux-aarch64", "macos-arm64"):
        for backend in ("tensorflow", "jax", "torch"):
            text = envs.lock_file(backend, platform=plat).read_text()
            assert "keras==3.15.1" in text and "--hash=sha256:" in text, (plat, backend)
    assert "tensorflow==2.21.0" in envs.lock_file("tensorflow", platform="macos-arm64").read_text()
    assert "torch==2.13.0+cpu" in envs.lock_file("torch", platform="linux-x86_64").read_text()
    monkeypatch.setattr(machine.platform, "system", lambda: "Windows")
    monkeypatch.setattr(machine.platform, "machine", lambda: "AMD64")
    with pytest.raises(EnvError, match=r"no locks for Windows AMD64: .* run `nox -s lock`"):
        envs.lock_file("jax")


def test_the_lock_command_names_the_platform_and_keeps_index_urls_out_of_the_lock(no_wheel_folder, tmp_path):
    header = envs.lock_file("jax", platform="linux-aarch64").read_text().splitlines()[1]
    assert header.strip() == "#    nox -s lock -- jax --platform linux-aarch64"
    for plat in ("linux-x86_64", "linux-aarch64", "macos-arm64"):
        for lock in envs.LOCKS.joinpath(plat).glob("*.txt"):
            assert "--extra-index-url" not in lock.read_text() and "--find-links" not in lock.read_text()


# --- any nox loads the noxfile ---------------------------------------------------------


def test_the_noxfile_imports_only_nox_and_the_standard_library():
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots - {"nox"} <= set(sys.stdlib_module_names), roots


@pytest.mark.skipif(not shutil.which("nox", path=str(Path(sys.executable).parent)), reason="no nox console script")
def test_the_nox_console_script_lists_the_sessions_from_anywhere(tmp_path):
    """The console script does not put the working directory on sys.path (`python -m nox`
    does); run from another folder with no PYTHONPATH, it must still load the noxfile."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    nox = Path(sys.executable).parent / "nox"
    proc = subprocess.run([str(nox), "-l", "-f", str(ROOT / "noxfile.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for session in ("parity", "golden", "tests", "lint", "lock", "images", "drift"):
        assert f" {session} -> " in proc.stdout, proc.stdout

"""Which machine computed a result: the CPU (or GPU) facts the backends choose kernels by,
the snapshot platform key made from them, and the lock platform an environment takes.

Bits are comparable only between runs that took the same kernels. oneDNN, XLA's CPU code
generation, MKL and the BLAS torch calls dispatch on the exact CPU: vendor, family and
model, the instruction-set extensions (AVX-512 subsets, VNNI, BF16, AMX on x86; SVE, BF16,
I8MM on ARM) and the cache sizes their blocking is tuned to. The key is readable where it
can be (device, architecture, vendor, an ISA cap) and ends in a short digest of the rest,
which the snapshot's JSON keeps in full.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
from pathlib import Path

# Extensions the backends' kernel dispatch reads; other flags (virtualisation, security
# mitigations) vary between hosts of one CPU without changing a single kernel.
_X86_DISPATCH = (
    "sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512dq", "avx512cd", "avx512bw",
    "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
    "avx512_bitalg", "avx512_vpopcntdq", "avx_vnni", "avx_vnni_int8", "avx_ne_convert", "avx_ifma",
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "amx_complex",
)  # fmt: skip
_ARM_DISPATCH = (
    "asimd", "asimdhp", "asimddp", "fphp", "asimdfhm", "i8mm", "bf16", "sve", "sve2", "svebf16", "svei8mm",
    "sme", "sme2",
)  # fmt: skip
# Extensions an ISA cap leaves usable (keras_parity/run/knobs.py: --isa-cap): a capped run's
# kernels cannot depend on anything outside its list.
ISA_CAPS = {
    "avx2": ("sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2"),
    "avx512_core": ("sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512dq", "avx512cd",
                    "avx512bw", "avx512vl"),
}  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (Linux), as a dict."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def _caches() -> dict[str, str]:
    """{'L1d': '48K', 'L2': '2048K', ...} of CPU 0 (Linux sysfs); tiling is sized by these."""
    out = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((d / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[name] = size
    return out


def _sysctl(*names: str) -> dict[str, str]:
    """macOS: sysctl values by name (missing ones left out)."""
    out = {}
    for name in names:
        try:
            proc = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0 and proc.stdout.strip():
            out[name] = proc.stdout.strip()
    return out


def _macos_cpu(arch: str) -> dict:
    feats = _sysctl(*(f"hw.optional.arm.FEAT_{f}" for f in ("BF16", "I8MM", "SME", "SME2", "FHM", "DotProd")))
    info = _sysctl("machdep.cpu.brand_string", "hw.perflevel0.l1dcachesize", "hw.perflevel0.l2cachesize")
    return {
        "arch": arch,
        "vendor": "apple",
        "model_name": info.get("machdep.cpu.brand_string", "unknown"),
        "flags": sorted(k.rsplit(".", 1)[1].lower().removeprefix("feat_") for k, v in feats.items() if v == "1"),
        "caches": {k: info[f"hw.perflevel0.{k.lower()}cachesize"] for k in ("L1d", "L2")
                   if f"hw.perflevel0.{k.lower()}cachesize" in info},
    }  # fmt: skip


def is_x86() -> bool:
    """Whether this machine's CPU is x86 (the one the ISA caps cap)."""
    return platform.machine().lower() in ("x86_64", "amd64")


def cpu_identity() -> dict:
    """The facts a CPU kernel choice depends on, readable: arch, vendor, model, flags, caches."""
    arch = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    if platform.system() == "Darwin":
        return _macos_cpu(arch)
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if arch == "x86_64":
        vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(info.get("vendor_id", ""), "unknown")
        ident = {"family": info.get("cpu family"), "model": info.get("model"), "stepping": info.get("stepping")}
        dispatch: tuple[str, ...] = _X86_DISPATCH
    else:
        vendor = {"0x41": "arm", "0x61": "apple", "0x48": "hisilicon", "0xc0": "ampere", "0x51": "qualcomm"}.get(
            info.get("CPU implementer", ""), info.get("CPU implementer", "unknown")
        )
        ident = {"part": info.get("CPU part"), "variant": info.get("CPU variant")}
        dispatch = _ARM_DISPATCH
    return {
        "arch": arch,
        "vendor": vendor,
        "model_name": info.get("model name") or platform.processor() or arch,
        **{k: v for k, v in ident.items() if v is not None},
        "flags": sorted(f for f in dispatch if f in flags),
        "caches": {k: v for k, v in _caches().items() if k in ("L1d", "L2")},
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_key(cpu: dict, isa_cap: str | None = None) -> str:
    """'cpu-x86_64-intel-1a2b3c4d', or 'cpu-x86_64-cap-avx2-intel-...' under an ISA cap: the
    digest covers every field, with the flags above a cap left out (no kernel can use them)."""
    facts = dict(cpu)
    if isa_cap:
        facts["flags"] = [f for f in cpu.get("flags", []) if f in ISA_CAPS[isa_cap]]
        facts["isa_cap"] = isa_cap
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:8]
    cap = f"-cap-{_slug(isa_cap)}" if isa_cap else ""
    return f"cpu-{cpu['arch']}{cap}-{_slug(cpu['vendor'])}-{digest}"


def gpu_key(gpu: dict) -> str:
    """'gpu-nvidia-a100-sxm4-40gb-sm80-<digest>': model and compute capability readable, the
    driver and the CUDA/cuDNN the kernels came from in the digest."""
    digest = hashlib.sha256(json.dumps(gpu, sort_keys=True).encode()).hexdigest()[:8]
    cc = f"-sm{gpu['compute_capability'].replace('.', '')}" if gpu.get("compute_capability") else ""
    return f"gpu-{_slug(gpu.get('model', 'gpu'))}{cc}-{digest}"


def platform_key(device: str, gpu: dict | None, isa_cap: str | None = None, cpu: dict | None = None) -> str:
    """Snapshots are bit-comparable only within one platform key. `cpu`: this machine's
    cpu_identity(), when the caller has it already."""
    if device == "gpu" and gpu:
        return gpu_key(gpu)
    return cpu_key(cpu or cpu_identity(), isa_cap)


def similarity(a: dict, b: dict) -> tuple:
    """How close two machines' identities are, for choosing the nearest snapshot of another
    platform: same architecture, then vendor, then model, then shared dispatch flags."""
    same = lambda k: a.get(k) is not None and a.get(k) == b.get(k)  # noqa: E731
    return (
        same("arch"),
        a.get("isa_cap") == b.get("isa_cap"),  # capped with capped, uncapped with uncapped
        same("vendor"),
        same("model") and same("family") or same("part"),
        len(set(a.get("flags", [])) & set(b.get("flags", []))),
    )


# Platforms with locks (requirements/<platform>/*.txt), by (system, machine).
LOCK_PLATFORMS = {
    ("linux", "x86_64"): "linux-x86_64",
    ("linux", "aarch64"): "linux-aarch64",
    ("darwin", "aarch64"): "macos-arm64",
}


def lock_platform(system: str | None = None, machine: str | None = None) -> str | None:
    """The lock platform of this machine (or of the given system and machine); None if unlocked."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    return LOCK_PLATFORMS.get((system, machine))

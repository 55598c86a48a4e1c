"""The environment a number was measured in: CPU, ISA features, OS, Python, runtime versions, thread settings."""
from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata

#: feature name → the /proc/cpuinfo flags (x86 'flags', Arm 'Features') that imply it
_X86_FLAGS = {
    "sse4_1": ("sse4_1",), "sse4_2": ("sse4_2",), "avx": ("avx",), "avx2": ("avx2",), "fma": ("fma",),
    "f16c": ("f16c",), "avx512": ("avx512f",), "avx512bw": ("avx512bw",), "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",), "avx512_bf16": ("avx512_bf16",), "avx512_fp16": ("avx512_fp16",),
    "amx": ("amx_tile",),
}
_ARM_FLAGS = {"neon": ("asimd", "neon"), "dotprod": ("asimddp",), "i8mm": ("i8mm",), "fp16": ("fphp", "asimdhp"),
              "bf16": ("bf16",), "sve": ("sve",), "sve2": ("sve2",)}
#: macOS sysctl keys → feature names (Apple silicon)
_MAC_KEYS = {"hw.optional.neon": "neon", "hw.optional.arm.FEAT_DotProd": "dotprod", "hw.optional.arm.FEAT_I8MM": "i8mm",
             "hw.optional.arm.FEAT_FP16": "fp16", "hw.optional.arm.FEAT_BF16": "bf16",
             "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512"}
RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "numpy", "onnx", "torch")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ORT_NUM_THREADS", "EDGEKIT_THREADS")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if info.get("flags") or info.get("Features"):
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def _sysctl(key: str) -> str | None:
    import subprocess
    try:
        res = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def cpu_features() -> set[str]:
    """ISA features that matter for inference speed, under stable names.

    x86: sse4_1 sse4_2 avx avx2 fma f16c avx512 avx512bw avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx;
    Arm: neon dotprod i8mm fp16 bf16 sve sve2. Also "vnni" when either VNNI flavour is present (fast int8 dot
    products on x86), and "int8_dot" when the CPU has any int8 dot-product instruction (VNNI or Arm dotprod).
    """
    return set(_cpu_features())


@functools.lru_cache(maxsize=1)
def _cpu_features() -> frozenset[str]:
    feats: set[str] = set()
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    for table in (_X86_FLAGS, _ARM_FLAGS):
        for name, needles in table.items():
            if flags.intersection(needles):
                feats.add(name)
    if not flags and sys.platform == "darwin":
        for key, name in _MAC_KEYS.items():
            if _sysctl(key) == "1":
                feats.add(name)
    if not flags and platform.machine().lower() in ("arm64", "aarch64"):
        feats.add("neon")  # mandatory in AArch64
    if feats & {"avx512_vnni", "avx_vnni"}:
        feats.add("vnni")
    if feats & {"vnni", "dotprod"}:
        feats.add("int8_dot")
    return frozenset(feats)


def cpu_model() -> str:
    info = _cpuinfo()
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        if info.get(key):
            return info[key]
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def versions() -> dict[str, str]:
    found = {}
    for dist in RUNTIME_DISTS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def fingerprint(threads: int | None = None) -> dict:
    """A JSON-ready description of this machine and software, attached to every benchmark result."""
    from edgekit import __version__
    fp = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_features": sorted(cpu_features()),
        "memory_gb": _mem_total_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "edgekit": __version__,
        "packages": versions(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "threads": threads,
    }
    ort = sys.modules.get("onnxruntime")
    if ort is not None and hasattr(ort, "get_available_providers"):
        fp["ort_providers"] = list(ort.get_available_providers())
    return fp


def summary(fp: dict) -> str:
    """One line for humans: 'AMD EPYC, 2 cores, avx2 avx512 vnni; Linux; Python 3.11; onnxruntime 1.32'."""
    keep = [f for f in ("neon", "dotprod", "i8mm", "avx2", "avx512", "vnni", "amx") if f in fp.get("cpu_features", ())]
    pk = fp.get("packages", {})
    rts = ", ".join(f"{d} {pk[d]}" for d in ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime") if d in pk)
    return (f"{fp.get('cpu')} ({fp.get('usable_cores')} usable cores; {' '.join(keep) or 'no SIMD extras'}); "
            f"{fp.get('os')}; Python {fp.get('python')}; {rts}")

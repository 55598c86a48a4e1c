"""One interface over ONNX Runtime and LiteRT. Needs numpy and one runtime; never imports torch or onnx."""
from __future__ import annotations

import os

from edgekit.runtimes.base import Session, TensorInfo

__all__ = ["load", "Session", "TensorInfo", "available_runtimes"]

RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "tflite": "litert"}


def load(path: str | os.PathLike | bytes, runtime: str = "auto", provider: str = "auto",
         threads: int | None = None, **options) -> Session:
    """Load a model file (or bytes) with the runtime that fits it.

    runtime: "auto" (by file content), "onnxruntime" or "litert"; provider: "auto" (CUDA when ONNX Runtime has
    it, else CPU), "cpu" or "cuda" (an EnvironmentProblem naming what to install when missing; nodes ORT places
    on the CPU anyway are listed in `session.notes` and a ProviderFallbackWarning). threads: intra-op threads
    (None: the runtime's default). Backend options: ONNX Runtime `optimization` ("disable", "basic",
    "extended", "all"), `profile`, `profile_prefix`; LiteRT `xnnpack` (default True).
    """
    from edgekit.errors import UsageError
    from edgekit.fileio import sniff_format

    if isinstance(path, (bytes, bytearray)):
        fmt = "tflite" if bytes(path[4:8]) == b"TFL3" else "onnx"
        label = "<bytes>"
    else:
        fmt = sniff_format(path)
        label = str(path)
    if runtime == "auto":
        runtime = RUNTIME_OF_FORMAT.get(fmt)
        if runtime is None:
            raise UsageError(f"'{label}' is a {fmt} file, which no runtime runs directly.",
                             hint="Export it to ONNX first (edgekit export), or convert it to TFLite.")
    if runtime in ("onnxruntime", "ort"):
        if fmt != "onnx":
            raise UsageError(f"ONNX Runtime cannot run '{label}', a {fmt} file.", hint="Use --runtime litert or auto.")
        from edgekit.runtimes.ort import OrtSession
        return OrtSession.open(path, provider=provider, threads=threads, **options)
    if runtime in ("litert", "tflite"):
        if fmt != "tflite":
            raise UsageError(f"LiteRT cannot run '{label}', a {fmt} file.", hint="Convert it: edgekit convert MODEL --to tflite.")
        if provider not in ("auto", "cpu"):
            raise UsageError(f"LiteRT runs on the CPU here; provider '{provider}' is not available for it.",
                             hint="Use --provider cpu or auto.")
        from edgekit.runtimes.litert import LiteRtSession
        return LiteRtSession.open(path, threads=threads, **options)
    raise UsageError(f"Unknown runtime '{runtime}'.", hint="Choose auto, onnxruntime or litert.")


def available_runtimes() -> dict[str, str | None]:
    """Runtime name → installed version (None if missing)."""
    from importlib import metadata
    found = {}
    for name, dists in {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "litert": ("ai-edge-litert", "tflite-runtime")}.items():
        found[name] = None
        for dist in dists:
            try:
                found[name] = f"{dist} {metadata.version(dist)}"
                break
            except metadata.PackageNotFoundError:
                continue
    return found

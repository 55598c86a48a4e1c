"""Lazy imports of optional dependencies, failing with the pip line that fixes them."""
from __future__ import annotations

import importlib
from types import ModuleType

from edgekit.errors import EnvironmentProblem

#: which extra provides which top-level module
EXTRA_OF = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "torch": "export",
    "onnxscript": "export",
    "safetensors": "export",
    "ai_edge_litert": "tflite",
    "matplotlib": "report",
    "cryptography": "bundle",
}


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module.split(".")[0], "all")
    torch_first = "pip install torch==2.13.0 (or the CPU build for your platform) first, then " if extra == "export" else ""
    return f'Install it with: {torch_first}pip install "edgekit[{extra}]".'


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise EnvironmentProblem naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EnvironmentProblem(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not installed ({exc}).",
            hint=install_hint(module),
        ) from exc

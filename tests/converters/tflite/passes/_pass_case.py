"""Helpers for the per-pass tests: compile inline ONNX text, check it against ONNX Runtime, return the op list."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/converters/tflite: the differential helper
from _differential import as_model, assert_converts, model_text  # noqa: E402

__all__ = ["as_model", "assert_converts", "compiled_ops", "declined", "model_text"]


def compiled_ops(onnx_text: str, **kwargs) -> list[str]:
    """The TFLite builtins emitted, in order, after ONNX Runtime and LiteRT agreed on seeded inputs."""
    return [op.code for op in assert_converts(onnx_text, **kwargs).graph.ops]


def declined(onnx_text: str, **kwargs) -> list[str]:
    """The conversion notes that say a pass left a match alone (and why)."""
    compiled = assert_converts(onnx_text, **kwargs)
    return [n for n in compiled.quantization.get("notes", []) if " not applied at " in n]

"""Tensor adapters between an ONNX model's view and a compiled .tflite's: NCHW <-> NHWC I/O and int8 I/O (de)quantization.

One home for them (numpy only), so convert's validation, its measured int8 islands and the differential tests
feed a compiled model the same way without importing each other.
"""
from __future__ import annotations

import numpy as np


def quantize_int8(array: np.ndarray, q: dict | None) -> np.ndarray:
    """Float → int8 with the tensor's {"scale", "zero_point"}; unchanged when the tensor is not quantized (q empty)."""
    if not q:
        return array
    return np.clip(np.round(array / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def dequantize_int8(array: np.ndarray, q: dict | None) -> np.ndarray:
    """int8 → float32 with the tensor's {"scale", "zero_point"}; unchanged when the tensor is not quantized."""
    return array if not q else ((array.astype(np.float32) - q["zero_point"]) * q["scale"]).astype(np.float32)


def to_layout(array: np.ndarray, layout: str | None) -> np.ndarray:
    """An ONNX (NCHW) array as the compiled input takes it: transposed when its I/O layout is NHWC."""
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if layout == "NHWC" else array


def from_layout(array: np.ndarray, layout: str | None) -> np.ndarray:
    """A compiled model's NHWC output back in the ONNX model's NCHW layout (unchanged otherwise)."""
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if layout == "NHWC" else array

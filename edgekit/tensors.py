"""Tensor adapters between a model's view and another's: NCHW <-> NHWC I/O and integer I/O (de)quantization.

One home for them (numpy only, so the device side may import it), so convert's validation, its measured int8
islands, compare, the pipeline, the app's processing and the differential tests feed a model the same way without
importing each other. Two forms of quantization parameters meet here: a compiled model's I/O record
({"scale": s, "zero_point": z}: quantize_int8/dequantize_int8) and a runtime tensor's (edgekit.runtimes TensorInfo,
per-tensor lists: quant_params, quantize, dequantize, adapt_input, adapt_output).
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


# ------------------------------------------------------------------ runtime tensors (edgekit.runtimes TensorInfo)

def is_channels_last(layout: str | None) -> bool:
    """'NHWC', 'NWC', 'NDHWC' → True; 'NCHW', None → False."""
    return bool(layout) and len(layout) >= 3 and layout[0] == "N" and layout[-1] == "C" and layout[1] != "C"


def to_channels_first(arr: np.ndarray) -> np.ndarray:
    return np.moveaxis(arr, -1, 1)


def to_channels_last(arr: np.ndarray) -> np.ndarray:
    return np.moveaxis(arr, 1, -1)


def canonical_shape(info) -> tuple:
    """The input's shape in channels-first order (how an ONNX model and PyTorch see it)."""
    shape = tuple(info.shape)
    if is_channels_last(info.layout) and len(shape) == len(info.layout):
        return (shape[0], shape[-1], *shape[1:-1])
    return shape


def quant_params(info) -> tuple[float, int] | None:
    """(scale, zero point) of an integer tensor with quantization parameters (per tensor: the first), else None."""
    q = info.quantization or {}
    if not q.get("scale") or np.dtype(info.dtype).kind not in "iu":
        return None
    return float(q["scale"][0]), int(q["zero_point"][0]) if q.get("zero_point") else 0


def quantize(x: np.ndarray, dtype, info) -> np.ndarray:
    """Float values → `dtype` for tensor `info`: an integer dtype through the tensor's scale and zero point when it
    has them, rounded and clipped to the dtype's range; a float dtype is a plain (contiguous) cast."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        q = info.quantization
        if q and q.get("scale"):
            scale = np.float32(q["scale"][0])
            zero = q["zero_point"][0] if q.get("zero_point") else 0
            x = np.round(x / scale) + zero
        bounds = np.iinfo(dtype)
        return np.clip(np.round(x), bounds.min, bounds.max).astype(dtype)
    return np.ascontiguousarray(x.astype(dtype, copy=False))


def dequantize(values: np.ndarray, info) -> np.ndarray:
    """A tensor's values as float32: integers through its scale and zero point when it has them."""
    values = np.asarray(values)
    q = info.quantization
    if np.issubdtype(values.dtype, np.integer) and q and q.get("scale"):
        zero = q["zero_point"][0] if q.get("zero_point") else 0
        return (values.astype(np.float32) - np.float32(zero)) * np.float32(q["scale"][0])
    return values.astype(np.float32, copy=False)


def adapt_input(arr: np.ndarray, info) -> np.ndarray:
    """A reference-layout (channels-first, float) array → what this model's input expects."""
    if is_channels_last(info.layout) and arr.ndim == len(info.layout):
        arr = to_channels_last(arr)
    if quant_params(info) and np.issubdtype(arr.dtype, np.floating):
        arr = quantize(arr, info.dtype, info)
    return np.ascontiguousarray(arr)


def adapt_output(arr: np.ndarray, info) -> np.ndarray:
    """This model's output → reference terms (dequantized, channels-first)."""
    if info is not None and quant_params(info):
        arr = dequantize(arr, info)
    if info is not None and is_channels_last(info.layout) and arr.ndim == len(info.layout):
        arr = to_channels_first(arr)
    return arr

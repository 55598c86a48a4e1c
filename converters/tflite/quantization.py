"""Quantization parameters as the compiler carries them, and the arithmetic on them: quantize / dequantize,
symmetric int8 weights, int32 biases, and the constraints TFLite's integer kernels put on tensors.

A parameter set is a dict `{"scale": [floats], "zero_point": [ints], "axis": int}` (one entry per channel
along `axis` when per-channel, one entry otherwise), stored on `Value.quant` and `TflTensor.quant`.
"""
from __future__ import annotations

import numpy as np

INT8 = (-128, 127)

#: integer kernels whose output parameters are fixed by TFLite: (scale, zero point) of the int8 output
FIXED_OUTPUT = {"LOGISTIC": (1.0 / 256, -128), "SOFTMAX": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}

#: integer kernels that move or pick values without rescaling: inputs and output must share parameters
SAME_SCALE = {"CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "SQUEEZE", "PAD", "PADV2",
              "MIRROR_PAD", "SLICE", "STRIDED_SLICE", "GATHER", "SPLIT", "SPLIT_V", "RESIZE_BILINEAR",
              "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MAX", "REDUCE_MIN", "MAXIMUM", "MINIMUM", "DEPTH_TO_SPACE",
              "SPACE_TO_DEPTH"}

#: which inputs of a SAME_SCALE op carry data (the others are shapes, axes, paddings)
DATA_INPUTS = {"SPLIT": (1,), "CONCATENATION": None, "MAXIMUM": (0, 1), "MINIMUM": (0, 1)}


def params(scale, zero_point, axis: int = 0) -> dict:
    scale = np.asarray(scale, np.float64).reshape(-1)
    zero_point = np.broadcast_to(np.asarray(zero_point, np.int64).reshape(-1), scale.shape)
    return {"scale": [float(s) for s in scale], "zero_point": [int(z) for z in zero_point], "axis": int(axis)}


#: int8 ADD/SUB: LiteRT's left shift before rescaling (add.cc, sub.cc: `(1 << 20) * output->params.scale`, float32)
ADD_LEFT_SHIFT = 20


def add_multiplier(input_scales, output_scale: float) -> float:
    """The rescaling multiplier LiteRT's int8 ADD/SUB computes, 2·max(input scale) / (2^20·output scale) in float32;
    the kernel aborts unless it lies in (0, 1). 0.0 when 2^20·output scale overflows float32."""
    with np.errstate(over="ignore"):
        shifted = np.float32(1 << ADD_LEFT_SHIFT) * np.float32(output_scale)
    return 2.0 * max(input_scales) / float(shifted) if np.isfinite(shifted) and shifted > 0 else 0.0


def moved_exactly(q: np.ndarray, quant: dict, target: dict) -> np.ndarray | None:
    """Quantized values `q` (with `quant`) in `target`'s parameters if those hold the same real values, else None."""
    real = dequantize(q, quant)
    moved = quantize(real, target, q.dtype)
    return moved if np.array_equal(dequantize(moved, target), real) else None


def per_tensor(quant: dict | None) -> bool:
    return quant is not None and len(quant["scale"]) == 1


def same(a: dict | None, b: dict | None, rel: float = 1e-6) -> bool:
    """Equal parameters (scales within `rel`), as TFLite's kernels compare them."""
    if a is None or b is None:
        return a is b
    if a["zero_point"] != b["zero_point"] or len(a["scale"]) != len(b["scale"]):
        return False
    return all(abs(x - y) <= rel * max(abs(x), abs(y)) for x, y in zip(a["scale"], b["scale"]))


def _broadcast(values, shape, axis, per_channel) -> np.ndarray:
    arr = np.asarray(values)
    if not per_channel:
        return arr.reshape(())
    view = [1] * len(shape)
    view[axis] = -1
    return arr.reshape(view)


def dequantize(q: np.ndarray, quant: dict) -> np.ndarray:
    per_channel = len(quant["scale"]) > 1
    scale = _broadcast(quant["scale"], q.shape, quant["axis"], per_channel).astype(np.float64)
    zp = _broadcast(quant["zero_point"], q.shape, quant["axis"], per_channel).astype(np.float64)
    return ((q.astype(np.float64) - zp) * scale).astype(np.float32)


def quantize(x: np.ndarray, quant: dict, dtype=np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    per_channel = len(quant["scale"]) > 1
    scale = _broadcast(quant["scale"], x.shape, quant["axis"], per_channel)
    zp = _broadcast(quant["zero_point"], x.shape, quant["axis"], per_channel)
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, info.min, info.max).astype(dtype)


def quantize_tensor(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Asymmetric per-tensor int8 covering [min(x, 0), max(x, 0)] (zero exactly representable)."""
    x = np.asarray(x, np.float32)
    lo, hi = min(float(x.min(initial=0.0)), 0.0), max(float(x.max(initial=0.0)), 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    quant = params(scale, zp)
    return quantize(x, quant), quant


def symmetric_weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, dict]:
    """int8 per-channel along `axis`, zero point 0, scale max|w| / 127 (what TFLite's conv/FC kernels need)."""
    w = np.asarray(w, np.float32)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1) if moved.size else np.zeros(w.shape[axis])
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    quant = params(scale, 0, axis)
    return quantize(w, quant), quant


def int32_bias(bias: np.ndarray, input_scale: float, weight_quant: dict) -> tuple[np.ndarray, dict]:
    """A float bias as int32 at scale input_scale × weight_scale (per output channel)."""
    scale = input_scale * np.asarray(weight_quant["scale"], np.float64)
    scale = np.broadcast_to(scale, np.asarray(bias).reshape(-1).shape) if scale.size == 1 else scale
    q = np.clip(np.round(np.asarray(bias, np.float64).reshape(-1) / scale), -2**31, 2**31 - 1).astype(np.int32)
    return q, params(scale, 0, 0)


def shift_uint8(q: np.ndarray | None, quant: dict) -> tuple[np.ndarray | None, dict]:
    """uint8 values/zero point → int8 with the zero point shifted by -128 (exact: same real values)."""
    shifted = params(quant["scale"], [z - 128 for z in quant["zero_point"]], quant["axis"])
    return (None if q is None else (q.astype(np.int16) - 128).astype(np.int8)), shifted


# -- tensors for lowerings


def weight_const(b, value, data: np.ndarray, axis: int, hint: str = "weight") -> str:
    """A conv/dense weight tensor: int8 with its per-channel axis now `axis` when `value` is quantized, else float32."""
    if value.quant is None:
        return b.const(data, np.float32, hint)
    quant = dict(value.quant, axis=axis if len(value.quant["scale"]) > 1 else 0)
    return b.const(np.asarray(data).astype(np.int8), hint=hint, quant=quant)


def bias_const(b, value, data: np.ndarray, hint: str = "bias") -> str:
    """int32 with its parameters when `value` is a quantized bias, else float32."""
    if value is not None and value.quant is not None and np.asarray(data).dtype == np.int32:
        return b.const(data, np.int32, hint, quant=dict(value.quant, axis=0))
    return b.const(data, np.float32, hint)


def channels(quant: dict | None, start: int, stop: int) -> dict | None:
    """The parameters of channels [start, stop) of a per-channel set (a per-tensor set is returned as is)."""
    if quant is None or len(quant["scale"]) == 1:
        return quant
    return dict(quant, scale=quant["scale"][start:stop], zero_point=quant["zero_point"][start:stop])


def scalar_like(b, value, x: float, hint: str) -> str:
    """A constant filled with `x`, shaped [1]*rank, in the dtype and parameters of the float or int8 `value`."""
    shape = [1] * value.rank
    if value.quant is None:
        return b.const(np.full(shape, x, np.float32), hint=hint)
    return b.const(quantize(np.full(shape, x, np.float32), value.quant), hint=hint, quant=dict(value.quant))

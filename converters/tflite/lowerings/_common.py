"""Helpers shared by lowerings: constant attributes from inputs, spatial padding rules, axes."""
from __future__ import annotations

import math

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Value
from edgekit.converters.tflite.registry import Unsupported

SAME, VALID = 0, 1  # schema Padding enum values


def const_of(value: Value | None, what: str, default=None):
    """The constant behind an optional input, or Unsupported if it is computed at run time."""
    if value is None:
        return default
    if not value.is_const:
        raise Unsupported(f"its {what} input '{value.name}' is computed at run time; only constants are supported",
                          hint="Make it a constant (fix dynamic shapes with --input-shape).")
    return value.const


def require_rank(value: Value, rank: int, what: str) -> None:
    if value.shape is None or value.rank != rank:
        raise Unsupported(f"only {what} is supported (input rank {None if value.shape is None else value.rank})")


def norm_axes(axes, rank: int) -> list:
    return sorted({int(a) % rank for a in axes})


def onnx_pads(in_hw, kernel, strides, dilations, pads, auto_pad, out_hw) -> tuple:
    """(begin_h, begin_w) and effective (end_h, end_w) of an ONNX conv/pool, after auto_pad."""
    begins, ends = [], []
    for i, (n, k, s, d, o) in enumerate(zip(in_hw, kernel, strides, dilations, out_hw)):
        eff_k = (k - 1) * d + 1
        if n == DYNAMIC:  # a run-time size: the pads as written (explicit PAD + VALID reproduces ONNX at every size)
            if auto_pad not in ("NOTSET", "VALID"):
                raise Unsupported(f"auto_pad={auto_pad} on a run-time size (its pads depend on the size)",
                                  hint="Export with explicit pads, or fix the input shapes with --input-shape.")
            explicit = pads and auto_pad == "NOTSET"
            begins.append(int(pads[i]) if explicit else 0)
            ends.append(int(pads[i + len(in_hw)]) if explicit else 0)
            continue
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            total = max((math.ceil(n / s) - 1) * s + eff_k - n, 0)
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif auto_pad in ("NOTSET", "VALID"):
            begin = pads[i] if pads and auto_pad == "NOTSET" else 0
        else:
            raise Unsupported(f"auto_pad={auto_pad!r} is not an ONNX value")
        begins.append(begin)
        ends.append(max((o - 1) * s + eff_k - n - begin, 0))
    return begins, ends


def tflite_padding(in_hw, kernel, strides, dilations, begins, ends, out_hw):
    """SAME or VALID if TFLite's rule reproduces the ONNX pads exactly, else None (pad explicitly). On a run-time
    size only size-independent rules apply: VALID without pads, SAME at stride 1 with TFLite's split of k - 1."""
    if DYNAMIC in in_hw:
        return _padding_at_any_size(in_hw, kernel, strides, dilations, begins, ends, out_hw)
    if all(b == 0 and e == 0 for b, e in zip(begins, ends)):
        if all(o == (n - ((k - 1) * d + 1)) // s + 1 for n, k, s, d, o in zip(in_hw, kernel, strides, dilations, out_hw)):
            return VALID
    same = True
    for n, k, s, d, o, b in zip(in_hw, kernel, strides, dilations, out_hw, begins):
        total = max((o - 1) * s + (k - 1) * d + 1 - n, 0)
        same &= o == math.ceil(n / s) and b == total // 2
    return SAME if same else None


def _padding_at_any_size(in_hw, kernel, strides, dilations, begins, ends, out_hw):
    static = [i for i, n in enumerate(in_hw) if n != DYNAMIC]
    if all(b == 0 and e == 0 for b, e in zip(begins, ends)) and all(
            out_hw[i] == (in_hw[i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in static):
        return VALID
    for i, (k, s, d, b, e) in enumerate(zip(kernel, strides, dilations, begins, ends)):
        total = (k - 1) * d
        if s != 1 or b != total // 2 or e != total - b:
            return None
    return SAME


def spatial(value: Value) -> list:
    """H, W of a 4-D NCHW-logical value."""
    return [int(value.shape[2]), int(value.shape[3])]


def phys(shape) -> list:
    return [DYNAMIC if d == DYNAMIC else int(d) for d in shape]


def padded_nhwc(x: Value, begins, ends) -> list:
    n, h, w, c = x.phys_shape
    return [n, h if h == DYNAMIC else h + begins[0] + ends[0], w if w == DYNAMIC else w + begins[1] + ends[1], c]


def nhwc_paddings(begins, ends) -> np.ndarray:
    return np.asarray([[0, 0], [begins[0], ends[0]], [begins[1], ends[1]], [0, 0]], dtype=np.int32)

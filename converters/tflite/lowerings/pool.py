"""Pooling on NHWC data: MaxPool, AveragePool, LpPool and their global forms, in every ONNX padding form.

TFLite's SAME/VALID are used where they reproduce the ONNX pads; otherwise the input is padded explicitly (with the
lowest value for max, zeros for the sums) and pooled VALID. An average whose divisor is not the full window (pads
left out by count_include_pad=0, a ceil_mode window running past the input) is corrected by one constant MUL of
window size / divisor per output position, computed at compile time. Lp pooling of order p is |x|^p, an average
pool scaled by the window size, then the p-th root.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import (SAME, VALID, nhwc_paddings, onnx_pads, padded_nhwc,
                                                         require_rank, spatial, tflite_padding)
from edgekit.converters.tflite.quantization import INT8
from edgekit.converters.tflite.registry import Unsupported, lowering

LOWEST = float(np.finfo(np.float32).min)
#: integer kernels: pooling keeps its input's parameters (the requantize pass matches the output to them)
POOL_DTYPES = ("float32", "int8")


def _window(x, y, kernel_shape, strides, pads, auto_pad, dilations):
    require_rank(x, 4, "2-D pooling (4-D input)")
    if any(d != 1 for d in dilations or [1, 1]):
        raise Unsupported(f"dilations={list(dilations)} (TFLite pooling has no dilation)")
    if kernel_shape is None or len(kernel_shape) != 2:
        raise Unsupported(f"kernel_shape={kernel_shape}; only 2-D pooling windows are supported")
    strides = list(strides or [1, 1])
    begins, ends = onnx_pads(spatial(x), kernel_shape, strides, [1, 1], pads, auto_pad, spatial(y))
    return strides, begins, ends


def _divisors(in_hw, kernel, strides, begins, ends, out_hw, include_pad) -> np.ndarray:
    """[oh, ow]: how many cells each ONNX average window divides by: those inside the input, and with include_pad
    those of the declared pads too (never a ceil_mode window's overhang past them)."""
    per_axis = []
    for n, k, s, bg, end, o in zip(in_hw, kernel, strides, begins, ends, out_hw):
        lo, hi = (-bg, n + end) if include_pad else (0, n)
        starts = np.arange(o) * s - bg
        per_axis.append(np.minimum(starts + k, hi) - np.maximum(starts, lo))
    return np.outer(*per_axis).astype(np.float64)


def _padded(b, x, src, begins, ends, pad_value) -> str:
    padded = b.like(x, padded_nhwc(x, begins, ends), hint="padded")
    paddings = b.const(nhwc_paddings(begins, ends), hint="paddings")
    if pad_value == 0.0:
        b.emit("PAD", [src, paddings], [padded])
    elif x.quant is not None:  # the lowest int8 value stands for -inf
        b.emit("PADV2", [src, paddings, b.const(np.asarray(INT8[0], np.int8), hint="pad_value", quant=x.quant)],
               [padded])
    else:
        b.emit("PADV2", [src, paddings, b.const(np.asarray(pad_value, np.float32), hint="pad_value")], [padded])
    return padded


def _pool_options(kernel, strides, padding) -> dict:
    return dict(padding=padding, strideH=strides[0], strideW=strides[1], filterHeight=kernel[0],
                filterWidth=kernel[1])


@lowering("MaxPool", since=1, emits=("MAX_POOL_2D", "PADV2"), layout="nhwc", dtypes=POOL_DTYPES)  # opset 1-7: no ceil_mode/dilations yet
@lowering("MaxPool", since=8, emits=("MAX_POOL_2D", "PADV2"), layout="nhwc", dtypes=POOL_DTYPES)
def max_pool(b, x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
             storage_order=0, strides=None):
    if len(b.outputs) > 1 and b.outputs[1] is not None:
        raise Unsupported("its Indices output is used; TFLite pooling has none",
                          hint="Drop the Indices output (MaxUnpool needs them: keep that part in ONNX Runtime).")
    if storage_order:
        raise Unsupported("storage_order=1 (it only changes the Indices output, which TFLite has none of)")
    y = b.outputs[0]
    strides, begins, ends = _window(x, y, kernel_shape, strides, pads, auto_pad, dilations)
    padding = tflite_padding(spatial(x), kernel_shape, strides, [1, 1], begins, ends, spatial(y))
    src = b.t(x)
    if padding is None:
        src, padding = _padded(b, x, src, begins, ends, LOWEST), VALID
    b.emit("MAX_POOL_2D", [src], [b.out(y)], **_pool_options(kernel_shape, strides, padding))


@lowering("AveragePool", since=7, emits=("AVERAGE_POOL_2D", "PAD", "MUL"), layout="nhwc", dtypes=POOL_DTYPES)
def average_pool(b, x, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                 pads=None, strides=None):
    y = b.outputs[0]
    strides, begins, ends = _window(x, y, kernel_shape, strides, pads, auto_pad, dilations)
    in_hw, out_hw = spatial(x), spatial(y)
    declared = list(pads[2:]) if auto_pad == "NOTSET" and pads else ends if auto_pad.startswith("SAME") else [0, 0]
    divisors = _divisors(in_hw, kernel_shape, strides, begins, declared, out_hw, bool(count_include_pad))
    padding = tflite_padding(in_hw, kernel_shape, strides, [1, 1], begins, ends, out_hw)
    # TFLite's SAME averages over the input cells only, which is count_include_pad=0 inside the input
    if padding == SAME and np.array_equal(divisors, _divisors(in_hw, kernel_shape, strides, begins, ends, out_hw,
                                                                False)):
        b.emit("AVERAGE_POOL_2D", [b.t(x)], [b.out(y)], **_pool_options(kernel_shape, strides, SAME))
        return
    src = b.t(x)
    if any(begins + ends):
        src = _padded(b, x, src, begins, ends, 0.0)
    full = float(kernel_shape[0] * kernel_shape[1])
    if np.all(divisors == full):
        b.emit("AVERAGE_POOL_2D", [src], [b.out(y)], **_pool_options(kernel_shape, strides, VALID))
        return
    if x.quant is not None:
        raise Unsupported(f"an int8 average whose windows divide by fewer cells than the kernel (pads={pads}, "
                          f"count_include_pad={count_include_pad}, ceil_mode={ceil_mode})",
                          hint="Use symmetric 'same' padding or count_include_pad=1, or keep the pooling in float.")
    pooled = b.like(y, hint="full_window_mean")
    b.emit("AVERAGE_POOL_2D", [src], [pooled], **_pool_options(kernel_shape, strides, VALID))
    correction = (full / divisors).astype(np.float32)[None, :, :, None]
    b.emit("MUL", [pooled, b.const(correction, hint="divisor_correction")], [b.out(y)])


def _power(b, x, src, p, hint) -> str:
    """|x|^p as a new tensor."""
    out = b.like(x, hint=hint)
    if p == 2:
        b.emit("SQUARE", [src], [out])
    elif p == 1:
        b.emit("ABS", [src], [out])
    else:
        magnitude = b.like(x, hint="abs")
        b.emit("ABS", [src], [magnitude])
        b.emit("POW", [magnitude, b.const(np.asarray(float(p), np.float32), hint="p")], [out])
    return out


def _root(b, src, dst, p) -> None:
    if p == 2:
        b.emit("SQRT", [src], [dst])
    else:
        b.emit("POW", [src, b.const(np.asarray(1.0 / p, np.float32), hint="inverse_p")], [dst])


def _order(p) -> float:
    p = float(p)
    if p <= 0:
        raise Unsupported(f"p={p:g}; Lp pooling needs p > 0")
    return int(p) if p.is_integer() else p


LP_EMITS = ("SQUARE", "ABS", "POW", "PAD", "AVERAGE_POOL_2D", "MUL", "SQRT")


@lowering("LpPool", since=1, emits=LP_EMITS, layout="nhwc")
def lp_pool_1(b, x, *, auto_pad="NOTSET", kernel_shape=None, p=2.0, pads=None, strides=None):
    _lp_pool(b, x, auto_pad, kernel_shape, p, pads, strides)


@lowering("LpPool", since=18, emits=LP_EMITS, layout="nhwc")
def lp_pool_18(b, x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, p=2, pads=None,
               strides=None):
    _lp_pool(b, x, auto_pad, kernel_shape, p, pads, strides, dilations)


def _lp_pool(b, x, auto_pad, kernel_shape, p, pads, strides, dilations=None):
    """(Σ over the window of |x|^p)^(1/p): pads add nothing to the sum, so the zero-padded mean × window size."""
    y = b.outputs[0]
    p = _order(p)
    strides, begins, ends = _window(x, y, kernel_shape, strides, pads, auto_pad, dilations)
    src = _power(b, x, b.t(x), p, "power")
    if any(begins + ends):
        src = _padded(b, x, src, begins, ends, 0.0)
    mean = b.like(y, hint="mean")
    b.emit("AVERAGE_POOL_2D", [src], [mean], **_pool_options(kernel_shape, strides, VALID))
    total = b.out(y) if p == 1 else b.like(y, hint="sum")
    b.emit("MUL", [mean, b.const(np.asarray(float(kernel_shape[0] * kernel_shape[1]), np.float32), hint="size")],
           [total])
    if p != 1:
        _root(b, total, b.out(y), p)


def _global(b, code, x):
    require_rank(x, 4, "2-D global pooling (4-D input)")
    b.emit(code, [b.t(x), b.ints([1, 2], "axes")], [b.out(b.outputs[0])], keepDims=True)


@lowering("GlobalAveragePool", emits=("MEAN",), layout="nhwc", dtypes=POOL_DTYPES)
def global_average_pool(b, x):
    _global(b, "MEAN", x)


@lowering("GlobalMaxPool", emits=("REDUCE_MAX",), layout="nhwc", dtypes=POOL_DTYPES)
def global_max_pool(b, x):
    _global(b, "REDUCE_MAX", x)


@lowering("GlobalLpPool", since=2, emits=("SQUARE", "ABS", "POW", "SUM", "SQRT"), layout="nhwc")
def global_lp_pool_2(b, x, *, p=2):
    _global_lp(b, x, p)


def _global_lp(b, x, p):
    require_rank(x, 4, "2-D global pooling (4-D input)")
    p = _order(p)
    y = b.outputs[0]
    total = b.out(y) if p == 1 else b.like(y, hint="sum")
    b.emit("SUM", [_power(b, x, b.t(x), p, "power"), b.ints([1, 2], "axes")], [total], keepDims=True)
    if p != 1:
        _root(b, total, b.out(y), p)

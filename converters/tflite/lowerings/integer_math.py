"""Integer products and dynamic quantization on LiteRT's float kernels, exact by construction.

MatMulInteger and ConvInteger run as float32 FULLY_CONNECTED / BATCH_MATMUL / CONV_2D on the operands minus their
zero points, then CAST to int32. float32 holds every integer of magnitude up to 2^24 exactly, so the result is exact
when every product and partial sum stays within that: proved at compile time from the operands' dtype ranges, the
zero points and the reduction length K (|sum| <= K * max|a - a_zp| * max|b - b_zp|), refused otherwise.
Constant weights of REQUANTIZED_FROM elements or more are kept out of the weight slot of FULLY_CONNECTED and CONV_2D
as float constants: the dynamic_range pass (precision "dynamic") would quantize them to int8 and round the integers.
DynamicQuantizeLinear is the reference's formula step by step (ROUND rounds half to even, as np.rint does).
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import (VALID, nhwc_paddings, onnx_pads, padded_nhwc, require_rank,
                                                         spatial, tflite_padding)
from edgekit.converters.tflite.passes.dynamic_range import MIN_ELEMENTS as REQUANTIZED_FROM
from edgekit.converters.tflite.registry import Unsupported, lowering

#: the largest magnitude below which every float32 integer is exact
EXACT_FLOAT32 = 2 ** 24
INTEGER_OPERANDS = ("uint8", "int8")


def cast(b, name: str, shape, src_dtype, dst_dtype, hint: str = "cast", out: str | None = None) -> str:
    """CAST `name` to `dst_dtype`, into `out` or a new temporary."""
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    out = out or b.temp(shape, dst_dtype, hint)
    types = schema().TensorType
    b.emit("CAST", [name], [out], inDataType=getattr(types, TENSOR_TYPES[np.dtype(src_dtype).name]),
           outDataType=getattr(types, TENSOR_TYPES[np.dtype(dst_dtype).name]))
    return out


def _largest_offset(value, zero_point) -> int:
    """max |v - zp| over every v of `value`'s dtype and every zero point it may have."""
    info = np.iinfo(value.dtype)
    if zero_point is None:
        return max(abs(info.min), abs(info.max))
    if zero_point.is_const:
        zp = np.asarray(zero_point.const).astype(np.int64).reshape(-1)
        return int(max(np.abs(info.min - zp).max(), np.abs(info.max - zp).max()))
    return int(info.max) - int(info.min)  # a run-time zero point of the same dtype


def _prove_exact(k: int, a, a_zp, bm, b_zp) -> None:
    bound = k * _largest_offset(a, a_zp) * _largest_offset(bm, b_zp)
    if bound >= EXACT_FLOAT32:
        raise Unsupported(f"the integer sums may reach {bound} (K={k} products of {a.dtype.name} by {bm.dtype.name}), "
                          f"past 2^24 where float32 (LiteRT's only exact path for {a.dtype.name} products) rounds",
                          hint="Split the reduction into chunks of fewer terms, or dequantize and use MatMul/Conv.")


def _check_operand(value, what):
    if value.dtype.name not in INTEGER_OPERANDS:
        raise Unsupported(f"{what} is {value.dtype.name}; only uint8 and int8 operands are supported")


def _centered(b, value, zero_point, zp_shape, hint) -> str:
    """`value` as float32 minus its zero point, a scalar or a vector laid out as `zp_shape` to broadcast."""
    src = cast(b, b.t(value), value.phys_shape, value.dtype, np.float32, hint)
    if zero_point is None:
        return src
    if zero_point.is_const:
        zp = np.asarray(zero_point.const).astype(np.float32)
        if not zp.any():
            return src
        operand = b.const(zp.reshape(zp_shape if zp.size > 1 else [1] * len(value.phys_shape)), hint=f"{hint}_zp")
    else:
        operand = cast(b, b.t(zero_point), zero_point.phys_shape, zero_point.dtype, np.float32, f"{hint}_zp")
        if int(np.prod(zero_point.shape)) > 1:  # per row / column / channel: laid along its axis
            laid = b.temp([int(np.prod(zero_point.shape)) if d == -1 else d for d in zp_shape], hint=f"{hint}_zp_laid")
            b.emit("RESHAPE", [operand, b.ints(zp_shape, "zp_shape")], [laid])
            operand = laid
    centered = b.temp(value.phys_shape, hint=f"{hint}_centered")
    b.emit("SUB", [src, operand], [centered])
    return centered


@lowering("MatMulInteger", since=10, emits=("CAST", "SUB", "RESHAPE", "FULLY_CONNECTED", "BATCH_MATMUL"),
          dtypes=("uint8", "int8", "int32"))
def matmul_integer(b, a, bm, a_zero_point=None, b_zero_point=None):
    """(A - a_zp) @ (B - b_zp) in int32; a_zp per row of A, b_zp per column of B."""
    _check_operand(a, "A")
    _check_operand(bm, "B")
    if a.rank < 2 or bm.rank < 2:
        raise Unsupported("1-D MatMulInteger operands are not supported", hint="Reshape them to 2-D in the model.")
    _prove_exact(int(a.shape[-1]), a, a_zero_point, bm, b_zero_point)
    y = b.outputs[0]
    lhs = _centered(b, a, a_zero_point, [-1, 1], "a")
    product = b.temp(y.phys_shape, hint="product")
    if bm.is_const and bm.rank == 2 and (b_zero_point is None or b_zero_point.is_const):
        zp = np.zeros([1], np.float32) if b_zero_point is None else np.asarray(b_zero_point.const, np.float32)
        weight = bm.const.astype(np.float32) - zp.reshape(1, -1)
        if weight.size < REQUANTIZED_FROM:
            b.emit("FULLY_CONNECTED", [lhs, b.const(np.ascontiguousarray(weight.T), hint="weight"), None], [product],
                   keepNumDims=a.rank > 2)
        else:
            b.emit("BATCH_MATMUL", [lhs, b.const(weight, hint="weight")], [product])
    else:
        rhs = _centered(b, bm, b_zero_point, [1, -1], "b")
        b.emit("BATCH_MATMUL", [lhs, rhs], [product])
    cast(b, product, y.phys_shape, np.float32, np.int32, out=b.out(y))


@lowering("ConvInteger", since=10, emits=("CAST", "SUB", "RESHAPE", "PAD", "CONV_2D", "TRANSPOSE"), layout="nhwc",
          dtypes=("uint8", "int8", "int32"))
def conv_integer(b, x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None):
    """A float CONV_2D on (x - x_zp) and (w - w_zp); padding adds zeros after the zero point is taken off, as in
    the reference (so the padded border counts as x_zp)."""
    require_rank(x, 4, "2-D ConvInteger (4-D input)")
    _check_operand(x, "x")
    _check_operand(w, "w")
    if group != 1:
        raise Unsupported(f"group={group}; only group=1 is supported")
    w_shape = [int(d) for d in w.shape]
    filters = _filters(b, w, w_zero_point)
    _prove_exact(int(np.prod(w_shape[1:])), x, x_zero_point, w, w_zero_point)
    y = b.outputs[0]
    kernel, strides, dilations = w_shape[2:], strides or [1, 1], dilations or [1, 1]
    begins, ends = onnx_pads(spatial(x), kernel, strides, dilations, pads, auto_pad, spatial(y))
    padding = tflite_padding(spatial(x), kernel, strides, dilations, begins, ends, spatial(y))
    src = _centered(b, x, x_zero_point, [1], "x")
    if padding is None:
        padded = b.temp(padded_nhwc(x, begins, ends), hint="padded")
        b.emit("PAD", [src, b.const(nhwc_paddings(begins, ends), hint="paddings")], [padded])
        src, padding = padded, VALID
    product = b.temp(y.phys_shape, hint="product")
    b.emit("CONV_2D", [src, filters, b.const(np.zeros(w_shape[0], np.float32), hint="bias")], [product],
           padding=padding, strideH=strides[0], strideW=strides[1],
           dilationHFactor=dilations[0], dilationWFactor=dilations[1])
    cast(b, product, y.phys_shape, np.float32, np.int32, out=b.out(y))


def _filters(b, w, w_zero_point) -> str:
    """The filters minus their zero points, OHWI float32: folded when constant, else CAST, SUB and TRANSPOSE (the
    kernel then runs without XNNPACK, which packs constant filters only)."""
    if w.is_const and (w_zero_point is None or w_zero_point.is_const):
        weight = w.const.astype(np.float32)
        if w_zero_point is not None:
            zp = np.asarray(w_zero_point.const, np.float32).reshape(-1)
            weight = weight - (zp.reshape(-1, 1, 1, 1) if zp.size > 1 else zp[0])
        ohwi = np.ascontiguousarray(weight.transpose(0, 2, 3, 1))
        if ohwi.size < REQUANTIZED_FROM:
            return b.const(ohwi, hint="weight")
        return cast(b, b.const(ohwi.astype(np.int32), hint="weight"), list(ohwi.shape), np.int32, np.float32)
    centered = _centered(b, w, w_zero_point, [-1, 1, 1, 1], "w")
    o, i, kh, kw = (int(d) for d in w.shape)
    ohwi = b.temp([o, kh, kw, i], hint="weight_ohwi")
    b.emit("TRANSPOSE", [centered, b.ints([0, 2, 3, 1], "perm")], [ohwi])
    return ohwi


@lowering("DynamicQuantizeLinear", since=11, dtypes=("float32", "uint8"),
          emits=("REDUCE_MAX", "REDUCE_MIN", "MAXIMUM", "MINIMUM", "SUB", "EQUAL", "SELECT_V2", "DIV", "NEG", "ROUND",
                 "ADD", "CAST", "SQUEEZE"))
def dynamic_quantize_linear(b, x):
    """scale = (max(0, max x) - min(0, min x)) / 255 (1/255 when that range is 0); zp = rint(clip(-min / scale,
    0, 255)); y = clip(rint(x / scale) + zp, 0, 255), all uint8 but the scale."""
    y, y_scale, y_zero_point = b.outputs
    rank = x.rank
    ones = [1] * rank
    axes = b.ints(list(range(rank)), "axes")
    zero = b.const(np.zeros(ones, np.float32), hint="zero")
    top = b.const(np.full(ones, 255, np.float32), hint="qmax")

    def step(code, *inputs, shape=ones, **options):
        out = b.temp(shape, hint=code.lower())
        b.emit(code, list(inputs), [out], **options)
        return out

    high = step("MAXIMUM", step("REDUCE_MAX", b.t(x), axes, keepDims=True), zero)
    low = step("MINIMUM", step("REDUCE_MIN", b.t(x), axes, keepDims=True), zero)
    spread = step("SUB", high, low)
    is_empty = b.temp(ones, np.bool_, "is_empty")
    b.emit("EQUAL", [spread, zero], [is_empty])
    spread = step("SELECT_V2", is_empty, b.const(np.ones(ones, np.float32), hint="one"), spread)
    scale = step("DIV", spread, top)
    zp = step("ROUND", step("MINIMUM", step("MAXIMUM", step("NEG", step("DIV", low, scale)), zero), top))
    q = step("ADD", step("ROUND", step("DIV", b.t(x), scale, shape=x.phys_shape), shape=x.phys_shape), zp,
             shape=x.phys_shape)
    q = step("MINIMUM", step("MAXIMUM", q, zero, shape=x.phys_shape), top, shape=x.phys_shape)
    cast(b, q, x.phys_shape, np.float32, np.uint8, out=b.out(y))
    b.emit("SQUEEZE", [scale], [b.out(y_scale)], squeezeDims=list(range(rank)))
    zp_scalar = step("SQUEEZE", zp, shape=[], squeezeDims=list(range(rank)))
    cast(b, zp_scalar, [], np.float32, np.uint8, out=b.out(y_zero_point))

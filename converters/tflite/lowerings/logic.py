"""Comparisons, boolean and bitwise logic, selection and casts, in whatever layout the operands share: Equal, Less,
Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor, BitShift, BitwiseXor, BitwiseNot, Where (attention masks:
masked_fill with -inf), Cast and CastLike.

Casts follow LiteRT's CAST, which converts like C++: integers wrap (as numpy and ONNX do), floats truncate toward
zero, and a float out of the target's range saturates (ONNX leaves that undefined). float64 is cast to and from, but
no arithmetic lowering declares it: a float64 graph is refused, not silently computed in float32."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

ANY = ("float32", "int64", "int32", "bool")


def _binary(b, code, x, y):
    out = b.outputs[0]
    b.emit(code, [b.operand(x, out), b.operand(y, out)], [b.out(out)])


def _compare(op, code, since):
    @lowering(op, since=since, emits=(code,), dtypes=ANY, layout="any")
    def compare(b, x, y):
        if x.dtype != y.dtype:
            raise Unsupported(f"operands of different dtypes ({x.dtype.name}, {y.dtype.name})")
        _binary(b, code, x, y)
    compare.__name__ = compare.__qualname__ = op.lower()
    return compare


equal = _compare("Equal", "EQUAL", 11)
less = _compare("Less", "LESS", 9)
greater = _compare("Greater", "GREATER", 9)
less_or_equal = _compare("LessOrEqual", "LESS_EQUAL", 12)
greater_or_equal = _compare("GreaterOrEqual", "GREATER_EQUAL", 12)


@lowering("Not", emits=("LOGICAL_NOT",), dtypes=("bool",), layout="any")
def not_(b, x):
    b.emit("LOGICAL_NOT", [b.t(x)], [b.out(b.outputs[0])])


@lowering("And", since=7, emits=("LOGICAL_AND",), dtypes=("bool",), layout="any")
def and_(b, x, y):
    _binary(b, "LOGICAL_AND", x, y)


@lowering("Or", since=7, emits=("LOGICAL_OR",), dtypes=("bool",), layout="any")
def or_(b, x, y):
    _binary(b, "LOGICAL_OR", x, y)


@lowering("Where", since=9, emits=("SELECT_V2",), dtypes=ANY, layout="any")
def where(b, condition, x, y):
    """SELECT_V2 broadcasts all three operands, as ONNX Where does."""
    out = b.outputs[0]
    b.emit("SELECT_V2", [b.operand(condition, out), b.operand(x, out), b.operand(y, out)], [b.out(out)])


#: every dtype a TFLite tensor can have that LiteRT's CAST converts (it has no uint64 kernel)
CAST_DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "bool")


def emit_cast(b, src: str, dst: str):
    """CAST tensor `src` into tensor `dst` (C++ conversions: integers wrap, floats truncate toward zero)."""
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    types = schema().TensorType
    kinds = [b.g.tensors[t].dtype.name for t in (src, dst)]
    for kind in kinds:
        if kind not in CAST_DTYPES:
            raise Unsupported(f"LiteRT's CAST does not convert {kind} (it converts {', '.join(CAST_DTYPES)})")
    return b.emit("CAST", [src], [dst], inDataType=getattr(types, TENSOR_TYPES[kinds[0]]),
                  outDataType=getattr(types, TENSOR_TYPES[kinds[1]]))


def converted(b, value, like, dtype) -> str:
    """`value` as an operand of `like` in `dtype`: a constant is converted at compile time, a run-time value CAST."""
    dtype = np.dtype(dtype)
    if value.dtype == dtype:
        return b.operand(value, like)
    if value.is_const:
        return b.operand(replace(value, const=value.const.astype(dtype), dtype=dtype), like)
    dest = b.temp(value.phys_shape, dtype, f"as_{dtype.name}")
    emit_cast(b, b.t(value), dest)
    return dest


def _cast(b, x):
    out = b.outputs[0]
    if out.dtype == x.dtype:
        return b.alias(out, b.t(x))
    emit_cast(b, b.t(x), b.out(out))


@lowering("Cast", since=6, emits=("CAST",), dtypes=CAST_DTYPES, layout="any")
def cast(b, x, *, saturate=1, to=None, round_mode="up"):
    """saturate and round_mode concern float8 targets only, which TFLite has none of."""
    _cast(b, x)


@lowering("CastLike", since=15, emits=("CAST",), dtypes=CAST_DTYPES, layout="any")
def cast_like(b, x, target, *, saturate=1, round_mode="up"):
    _cast(b, x)


@lowering("Xor", since=7, emits=("NOT_EQUAL",), dtypes=("bool",), layout="any")
def xor(b, x, y):
    _binary(b, "NOT_EQUAL", x, y)


#: LiteRT's BITWISE_XOR and RIGHT_SHIFT take these; uint64 has no LiteRT kernel
BITWISE = ("int8", "uint8", "int16", "uint16", "int32", "uint32")


@lowering("BitwiseXor", since=18, emits=("BITWISE_XOR",), dtypes=BITWISE, layout="any")
def bitwise_xor(b, x, y):
    _binary(b, "BITWISE_XOR", x, y)


@lowering("BitwiseNot", since=18, emits=("BITWISE_XOR",), dtypes=BITWISE, layout="any")
def bitwise_not(b, x):
    """~x = x XOR all-ones."""
    out = b.outputs[0]
    ones = b.const(np.full([1] * out.rank, -1).astype(out.dtype), hint="all_ones")
    b.emit("BITWISE_XOR", [b.t(x), ones], [b.out(out)])


@lowering("BitShift", since=11, emits=("RIGHT_SHIFT", "MUL", "CAST"), dtypes=BITWISE, layout="any")
def bit_shift(b, x, y, *, direction):
    """RIGHT: RIGHT_SHIFT. LEFT: a multiplication by 2**y in a wider type (LiteRT has no LEFT_SHIFT, and its narrow
    MUL kernels are quantized), cast back: the CAST wraps, dropping the bits shifted out as ONNX does."""
    out = b.outputs[0]
    bits = x.dtype.itemsize * 8
    if y.is_const and (y.const.min(initial=0) < 0 or y.const.max(initial=0) >= bits):
        raise Unsupported(f"shift amounts outside [0, {bits}) (C++ shifts, which LiteRT's kernels use, leave them "
                          "undefined)")
    if not y.is_const and x.dtype.kind == "i":
        raise Unsupported(f"a shift of the signed {x.dtype.name} '{x.name}' by the run-time amount '{y.name}' (a "
                          "negative or oversized amount has no defined LiteRT result)",
                          hint="Make the shift amount a constant.")
    if direction == "RIGHT":
        return b.emit("RIGHT_SHIFT", [b.operand(x, out), converted(b, y, out, x.dtype)], [b.out(out)])
    if direction != "LEFT":
        raise Unsupported(f"direction={direction!r} is not an ONNX value")
    if not y.is_const:
        raise Unsupported(f"a LEFT shift by the run-time amount '{y.name}': LiteRT has no LEFT_SHIFT, and it is "
                          "computed as a multiplication by a constant power of two",
                          hint="Make the shift amount a constant.")
    wide = np.dtype(np.int64 if x.dtype == np.uint32 else np.int32)
    factor = np.left_shift(np.ones_like(y.const, dtype=np.int64), y.const.astype(np.int64))
    factor = factor.astype(wide)
    product = b.temp(out.phys_shape, wide, "shifted")
    b.emit("MUL", [converted(b, x, out, wide), b.operand(replace(y, const=factor, dtype=wide), out)], [product])
    emit_cast(b, product, b.out(out))


@lowering("Expand", since=8, emits=("TILE", "RESHAPE"), dtypes=ANY)
def expand(b, x, shape):
    """The output shape is static (shape inference worked it out): TILE the size-1 dims up to it.
    (BROADCAST_TO would do, but LiteRT registers it only from op version 2.)"""
    out = b.outputs[0]
    if out.is_dynamic or x.is_dynamic:
        raise Unsupported("a run-time output shape", hint="Fix the input shapes with --input-shape.")
    src = b.t(x)
    aligned = [1] * (out.rank - x.rank) + list(x.shape)
    if out.rank != x.rank:
        src_aligned = b.temp(aligned, x.dtype, "aligned")
        b.emit("RESHAPE", [src, b.ints(aligned)], [src_aligned])
        src = src_aligned
    multiples = [o // a for o, a in zip(out.shape, aligned)]
    if multiples == [1] * out.rank:
        return b.alias(out, src)
    b.emit("TILE", [src, b.ints(multiples, "multiples")], [b.out(out)])


@lowering("Tile", since=6, emits=("TILE",), dtypes=ANY)
def tile(b, x, repeats):
    from edgekit.converters.tflite.lowerings._common import const_of
    b.emit("TILE", [b.t(x), b.ints(const_of(repeats, "repeats").astype(np.int64))], [b.out(b.outputs[0])])

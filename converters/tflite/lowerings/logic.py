"""Comparisons, boolean logic, selection and casts, in whatever layout the operands share: Equal, Less,
Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Where (attention masks: masked_fill with -inf) and Cast."""
from __future__ import annotations

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


@lowering("Cast", since=6, emits=("CAST",), dtypes=ANY, layout="any")
def cast(b, x, *, saturate=1, to=None):
    out = b.outputs[0]
    if out.dtype == x.dtype:
        return b.alias(out, b.t(x))
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    types = schema().TensorType
    if x.dtype.name not in TENSOR_TYPES or out.dtype.name not in TENSOR_TYPES:
        raise Unsupported(f"casting {x.dtype.name} to {out.dtype.name}")
    b.emit("CAST", [b.t(x)], [b.out(out)], inDataType=getattr(types, TENSOR_TYPES[x.dtype.name]),
           outDataType=getattr(types, TENSOR_TYPES[out.dtype.name]))


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

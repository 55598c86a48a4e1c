"""Elementwise arithmetic in whatever layout the operands have: Add, Sub, Mul, Div, Pow, Max, Min, Sum
and the unary math ops."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings.logic import converted, emit_cast
from edgekit.converters.tflite.registry import lowering

ARITH = ("float32",)
#: int8 is the quantized kernel (MAXIMUM/MINIMUM need equal scales: the requantize pass); int8/uint8/int16 values
#: without quantization parameters, and uint32, reach these ops widened (passes.integer_dtypes)
INT8_ARITH = ("float32", "int8", "int32", "int64")


def _binary(b, code, x, y):
    out = b.outputs[0]
    b.emit(code, [b.operand(x, out), b.operand(y, out)], [b.out(out)])


@lowering("Add", since=7, emits=("ADD",), layout="any", dtypes=INT8_ARITH)
def add(b, x, y):
    _binary(b, "ADD", x, y)


@lowering("Sub", since=7, emits=("SUB",), layout="any", dtypes=INT8_ARITH)
def sub(b, x, y):
    _binary(b, "SUB", x, y)


@lowering("Mul", since=7, emits=("MUL",), layout="any", dtypes=INT8_ARITH)
def mul(b, x, y):
    _binary(b, "MUL", x, y)


@lowering("Div", since=7, emits=("DIV",), layout="any", dtypes=("float32", "int32"))
def div(b, x, y):
    _binary(b, "DIV", x, y)


@lowering("Pow", since=7, emits=("POW", "MUL", "SQRT", "CAST"), layout="any", dtypes=("float32", "int32"))
def pow_(b, x, y):
    """LiteRT's POW needs equal operand types (float32 or int32): a float base takes the exponent as float32; an
    integer base with a float exponent is computed in float32 and truncated back, as ONNX's Pow does."""
    out = b.outputs[0]
    exponent = float(y.const.reshape(-1)[0]) if y.is_const and y.const.size == 1 else None
    if exponent == 2.0:
        b.emit("MUL", [b.t(x), b.t(x)], [b.out(out)])
    elif exponent == 0.5 and x.dtype == np.float32:
        b.emit("SQRT", [b.t(x)], [b.out(out)])
    elif x.dtype == np.float32 or y.dtype.kind != "f":
        b.emit("POW", [b.operand(x, out), converted(b, y, out, x.dtype)], [b.out(out)])
    else:
        base = converted(b, x, out, np.float32)
        power = b.temp(out.phys_shape, np.float32, "power")
        b.emit("POW", [base, converted(b, y, out, np.float32)], [power])
        emit_cast(b, power, b.out(out))


def _chain(b, code, xs):
    out = b.outputs[0]
    acc = b.operand(xs[0], out)
    for i, x in enumerate(xs[1:], 1):
        dest = b.out(out) if i == len(xs) - 1 else b.like(out, hint=f"partial{i}")
        b.emit(code, [acc, b.operand(x, out)], [dest])
        acc = dest
    if len(xs) == 1:
        b.alias(out, acc)


@lowering("Sum", since=6, emits=("ADD",), layout="any", dtypes=INT8_ARITH)  # equal shapes only
@lowering("Sum", since=8, emits=("ADD",), layout="any", dtypes=INT8_ARITH)
def sum_(b, *xs):
    _chain(b, "ADD", xs)


@lowering("Max", since=6, emits=("MAXIMUM",), layout="any", dtypes=INT8_ARITH)  # equal shapes only
@lowering("Max", since=8, emits=("MAXIMUM",), layout="any", dtypes=INT8_ARITH)
def max_(b, *xs):
    _chain(b, "MAXIMUM", xs)


@lowering("Min", since=6, emits=("MINIMUM",), layout="any", dtypes=INT8_ARITH)  # equal shapes only
@lowering("Min", since=8, emits=("MINIMUM",), layout="any", dtypes=INT8_ARITH)
def min_(b, *xs):
    _chain(b, "MINIMUM", xs)


def _unary(b, code, x, **options):
    b.emit(code, [b.t(x)], [b.out(b.outputs[0])], **options)


@lowering("Sqrt", since=6, emits=("SQRT",), layout="any")
def sqrt(b, x):
    _unary(b, "SQRT", x)


@lowering("Exp", since=6, emits=("EXP",), layout="any")
def exp(b, x):
    _unary(b, "EXP", x)


@lowering("Log", since=6, emits=("LOG",), layout="any")
def log(b, x):
    _unary(b, "LOG", x)


@lowering("Neg", since=6, emits=("NEG",), layout="any", dtypes=("float32", "int32", "int64"))
def neg(b, x):
    _unary(b, "NEG", x)


@lowering("Abs", since=6, emits=("ABS",), layout="any", dtypes=("float32", "int32"))
def abs_(b, x):
    _unary(b, "ABS", x)


@lowering("Reciprocal", since=6, emits=("DIV",), layout="any")
def reciprocal(b, x):
    out = b.outputs[0]
    b.emit("DIV", [b.const(np.ones([1] * out.rank, np.float32), hint="one"), b.t(x)], [b.out(out)])

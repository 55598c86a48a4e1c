"""Elementwise math beyond arithmetic: trigonometric and hyperbolic functions, rounding, Sign, Erf, IsNaN, IsInf
and Mod. Where TFLite has no builtin, the lowering states its composition and why it stays accurate (the
float32 result is compared within 1e-4 × output scale; every composition here is within a few float32 ulps of
its terms)."""
from __future__ import annotations

import math

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

FLOAT = ("float32",)
#: ops whose builtin also has an int32 kernel (int64 reaches them through the general int64 -> int32 narrowing)
FLOAT_INT = ("float32", "int32")


def _scalar(b, value, hint, dtype=np.float32):
    """A constant broadcastable against the output in any layout: shaped [1] * rank."""
    return b.const(np.full([1] * b.outputs[0].rank, value, dtype), hint=hint)


def _step(b, code, inputs, hint, dtype=np.float32):
    """Emit `code` into a fresh temporary shaped like the output; return the temporary's name."""
    dest = b.temp(b.outputs[0].phys_shape, dtype, hint=hint)
    b.emit(code, inputs, [dest])
    return dest


def _unary(b, code, x):
    b.emit(code, [b.t(x)], [b.out(b.outputs[0])])


# -- builtins one to one

@lowering("Sin", since=7, emits=("SIN",), layout="any")
def sin(b, x):
    _unary(b, "SIN", x)


@lowering("Cos", since=7, emits=("COS",), layout="any")
def cos(b, x):
    _unary(b, "COS", x)


@lowering("Floor", since=6, emits=("FLOOR",), layout="any")
def floor(b, x):
    _unary(b, "FLOOR", x)


@lowering("Ceil", since=6, emits=("CEIL",), layout="any")
def ceil(b, x):
    _unary(b, "CEIL", x)


@lowering("Round", since=11, emits=("ROUND",), layout="any")
def round_(b, x):
    """TFLite's ROUND rounds halves to even, as ONNX Round does (tested on ±0.5, ±1.5, ±2.5)."""
    _unary(b, "ROUND", x)


@lowering("Sign", since=9, emits=("SIGN",), layout="any", dtypes=FLOAT_INT)
def sign(b, x):
    _unary(b, "SIGN", x)


# -- trigonometry

@lowering("Tan", since=7, emits=("SIN", "COS", "DIV"), layout="any")
def tan(b, x):
    b.emit("DIV", [_step(b, "SIN", [b.t(x)], "sin"), _step(b, "COS", [b.t(x)], "cos")], [b.out(b.outputs[0])])


@lowering("Atan", since=7, emits=("ATAN2",), layout="any")
def atan(b, x):
    """atan(x) = atan2(x, 1)."""
    b.emit("ATAN2", [b.t(x), _ones(b, x)], [b.out(b.outputs[0])])


def _ones(b, x):
    """ATAN2 does not broadcast: a ones tensor of x's (static) shape."""
    shape = x.phys_shape
    if any(d < 0 for d in shape):
        raise Unsupported(f"ATAN2 needs operands of one shape and '{x.name}' has a run-time dimension {list(shape)}",
                          hint="Fix the input shapes with --input-shape.")
    return b.const(np.ones(shape, np.float32), hint="one")


def _cosine_of_arcsine(b, x):
    """sqrt(1 - x²) as sqrt((1 - x)(1 + x)), which keeps its precision near |x| = 1 (NaN beyond, as expected)."""
    one = _scalar(b, 1.0, "one")
    below = _step(b, "SUB", [one, b.t(x)], "one_minus")
    above = _step(b, "ADD", [b.t(x), one], "one_plus")
    return _step(b, "SQRT", [_step(b, "MUL", [below, above], "product")], "root")


ARC_EMITS = ("SUB", "ADD", "MUL", "SQRT", "ATAN2")


@lowering("Asin", since=7, emits=ARC_EMITS, layout="any")
def asin(b, x):
    """asin(x) = atan2(x, sqrt(1 - x²)): exact at ±1 (±pi/2), NaN for |x| > 1."""
    b.emit("ATAN2", [b.t(x), _cosine_of_arcsine(b, x)], [b.out(b.outputs[0])])


@lowering("Acos", since=7, emits=ARC_EMITS, layout="any")
def acos(b, x):
    """acos(x) = atan2(sqrt(1 - x²), x): exact at ±1 (0, pi), NaN for |x| > 1."""
    b.emit("ATAN2", [_cosine_of_arcsine(b, x), b.t(x)], [b.out(b.outputs[0])])


# -- hyperbolic functions

def _half_exps(b, x):
    """exp(x) / 2 and exp(-x) / 2 as exp(x - ln 2) and exp(-ln 2 - x): no overflow until sinh/cosh overflow."""
    ln2 = _scalar(b, math.log(2.0), "ln2")
    minus_ln2 = _scalar(b, -math.log(2.0), "minus_ln2")
    up = _step(b, "EXP", [_step(b, "SUB", [b.t(x), ln2], "shifted_up")], "half_exp")
    down = _step(b, "EXP", [_step(b, "SUB", [minus_ln2, b.t(x)], "shifted_down")], "half_exp_neg")
    return up, down


@lowering("Sinh", since=9, emits=("SUB", "EXP"), layout="any")
def sinh(b, x):
    b.emit("SUB", list(_half_exps(b, x)), [b.out(b.outputs[0])])


@lowering("Cosh", since=9, emits=("SUB", "EXP", "ADD"), layout="any")
def cosh(b, x):
    b.emit("ADD", list(_half_exps(b, x)), [b.out(b.outputs[0])])


def _log_quarter(b, name):
    """log(v / 4): LiteRT's LOG returns inf from about 2.5e38 on, so a log of the largest floats is taken at a
    quarter of them (and the 4 given back through `_log_times_4`)."""
    return _step(b, "LOG", [_step(b, "MUL", [name, _scalar(b, 0.25, "quarter")], "quarter")], "log_quarter")


def _log_times_4(b, name):
    return _step(b, "LOG", [_step(b, "MUL", [name, _scalar(b, 4.0, "four")], "times_4")], "log_times_4")


@lowering("Asinh", since=9, emits=("ABS", "MAXIMUM", "DIV", "MUL", "ADD", "SQRT", "LOG", "SIGN"), layout="any")
def asinh(b, x):
    """asinh(x) = sign(x) · (log m + log(u + sqrt(u² + v²))) with a = |x|, m = max(a, 1), u = a/m, v = 1/m:
    log(a + sqrt(a² + 1)) scaled so that a² cannot overflow for large |x| (exact to float32's last digits up to
    3.4e38; near 0 the error is float32 rounding of log(1 + a), a few 1e-8 absolute)."""
    one = _scalar(b, 1.0, "one")
    a = _step(b, "ABS", [b.t(x)], "abs")
    m = _step(b, "MAXIMUM", [a, one], "scale")
    u = _step(b, "DIV", [a, m], "u")
    v = _step(b, "DIV", [one, m], "v")
    hyp = _step(b, "SQRT", [_step(b, "ADD", [_step(b, "MUL", [u, u], "u2"), _step(b, "MUL", [v, v], "v2")], "sum")],
                "hypot")
    log_sum = _log_times_4(b, _step(b, "ADD", [u, hyp], "arg"))
    magnitude = _step(b, "ADD", [_log_quarter(b, m), log_sum], "magnitude")
    b.emit("MUL", [_step(b, "SIGN", [b.t(x)], "sign"), magnitude], [b.out(b.outputs[0])])


@lowering("Acosh", since=9, emits=("DIV", "SUB", "ADD", "MUL", "SQRT", "LOG"), layout="any")
def acosh(b, x):
    """acosh(x) = log x + log(1 + sqrt((1 - r)(1 + r))), r = 1/x: log(x + sqrt(x² - 1)) without squaring x
    (no overflow); NaN for x < 1 as expected (the square root of a negative)."""
    one = _scalar(b, 1.0, "one")
    r = _step(b, "DIV", [one, b.t(x)], "reciprocal")
    product = _step(b, "MUL", [_step(b, "SUB", [one, r], "one_minus"), _step(b, "ADD", [one, r], "one_plus")],
                    "product")
    inner = _log_times_4(b, _step(b, "ADD", [one, _step(b, "SQRT", [product], "root")], "arg"))
    b.emit("ADD", [_log_quarter(b, b.t(x)), inner], [b.out(b.outputs[0])])


@lowering("Atanh", since=9, emits=("ADD", "SUB", "DIV", "LOG", "MUL"), layout="any")
def atanh(b, x):
    """atanh(x) = log((1 + x) / (1 - x)) / 2: ±inf at ±1, NaN beyond."""
    one = _scalar(b, 1.0, "one")
    ratio = _step(b, "DIV", [_step(b, "ADD", [one, b.t(x)], "one_plus"), _step(b, "SUB", [one, b.t(x)], "one_minus")],
                  "ratio")
    b.emit("MUL", [_step(b, "LOG", [ratio], "log"), _scalar(b, 0.5, "half")], [b.out(b.outputs[0])])


# -- Erf

#: Abramowitz & Stegun 7.1.26: erf(a) = 1 - t·(a1 + t·(a2 + ... + t·a5))·exp(-a²), t = 1 / (1 + p·a), a >= 0,
#: absolute error <= 1.5e-7
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@lowering("Erf", since=9, emits=("ABS", "MUL", "ADD", "DIV", "EXP", "SUB", "SIGN"), layout="any")
def erf(b, x):
    """Erf alone (GELU's Erf is fused first): Abramowitz & Stegun 7.1.26 on |x|, odd-extended by sign(x);
    absolute error <= 1.5e-7 plus float32 rounding."""
    one = _scalar(b, 1.0, "one")
    a = _step(b, "ABS", [b.t(x)], "abs")
    t = _step(b, "DIV", [one, _step(b, "ADD", [_step(b, "MUL", [a, _scalar(b, ERF_P, "p")], "pa"), one], "denom")],
              "t")
    poly = _step(b, "MUL", [t, _scalar(b, ERF_A[-1], "a5")], "poly")
    for i in range(len(ERF_A) - 2, -1, -1):  # Horner: poly = t · (a_i + poly)
        poly = _step(b, "MUL", [t, _step(b, "ADD", [poly, _scalar(b, ERF_A[i], f"a{i + 1}")], "sum")], "poly")
    gauss = _step(b, "EXP", [_step(b, "MUL", [_step(b, "MUL", [a, a], "a2"), _scalar(b, -1.0, "minus_one")], "neg_a2")],
                  "gauss")
    magnitude = _step(b, "SUB", [one, _step(b, "MUL", [poly, gauss], "tail")], "magnitude")
    b.emit("MUL", [_step(b, "SIGN", [b.t(x)], "sign"), magnitude], [b.out(b.outputs[0])])


# -- classification

@lowering("IsNaN", since=9, emits=("NOT_EQUAL",), layout="any", dtypes=("float32", "bool"))
def is_nan(b, x):
    """NaN is the only value unequal to itself."""
    b.emit("NOT_EQUAL", [b.t(x), b.t(x)], [b.out(b.outputs[0])])


@lowering("IsInf", since=10, emits=("ABS", "EQUAL", "LESS"), layout="any", dtypes=("float32", "bool"))
def is_inf(b, x, *, detect_negative=1, detect_positive=1):
    out = b.outputs[0]
    if detect_negative and detect_positive:
        b.emit("EQUAL", [_step(b, "ABS", [b.t(x)], "abs"), _scalar(b, math.inf, "inf")], [b.out(out)])
    elif detect_negative or detect_positive:
        b.emit("EQUAL", [b.t(x), _scalar(b, -math.inf if detect_negative else math.inf, "inf")], [b.out(out)])
    else:  # nothing to detect: all false, as x < -inf is for every x (NaN included)
        b.emit("LESS", [b.t(x), _scalar(b, -math.inf, "minus_inf")], [b.out(out)])


# -- Mod

@lowering("Mod", since=10, emits=("FLOOR_MOD", "ABS", "SIGN", "MUL"), layout="any", dtypes=FLOAT_INT)
def mod(b, x, y, *, fmod=0):
    """fmod=0: FLOOR_MOD (the result takes the divisor's sign). fmod=1: sign(x) · FLOOR_MOD(|x|, |y|): on
    non-negative operands FLOOR_MOD is the C fmod (exact for floats and integers), and C's fmod takes the
    dividend's sign, so this is exact too (unlike x - trunc(x / y) · y, whose quotient rounds). The one int32
    value off is a dividend of INT32_MIN, whose absolute value wraps."""
    out = b.outputs[0]
    if x.dtype != y.dtype:
        raise Unsupported(f"operands of different dtypes ({x.dtype.name}, {y.dtype.name})")
    if not fmod:
        b.emit("FLOOR_MOD", [b.operand(x, out), b.operand(y, out)], [b.out(out)])
        return
    dtype = np.dtype(out.dtype)
    xs, ys = b.operand(x, out), b.operand(y, out)
    ax = b.temp(b.shape_of(xs), dtype, hint="abs_x")
    b.emit("ABS", [xs], [ax])
    ay = b.temp(b.shape_of(ys), dtype, hint="abs_y")
    b.emit("ABS", [ys], [ay])
    magnitude = _step(b, "FLOOR_MOD", [ax, ay], "magnitude", dtype)
    sx = b.temp(b.shape_of(xs), dtype, hint="sign_x")
    b.emit("SIGN", [xs], [sx])
    b.emit("MUL", [sx, magnitude], [b.out(out)])

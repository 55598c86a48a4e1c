"""Activations, in whatever layout their input has: Relu, Clip, LeakyRelu, PRelu, Sigmoid, Tanh,
HardSigmoid, HardSwish, Elu, Softplus, Mish, Selu, Celu, ThresholdedRelu, Softsign, Shrink, Swish."""
from __future__ import annotations

import math

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of
from edgekit.converters.tflite.quantization import scalar_like
from edgekit.converters.tflite.registry import Unsupported, lowering

#: integer kernels exist (LOGISTIC/TANH have fixed output scales: the requantize pass takes care of them)
INT8 = ("float32", "int8")


def _unary(b, code, x, **options):
    b.emit(code, [b.t(x)], [b.out(b.outputs[0])], **options)


def _scalar(b, value, hint):
    return b.const(np.full([1] * b.outputs[0].rank, value, np.float32), hint=hint)


@lowering("Relu", since=6, emits=("RELU",), layout="any", dtypes=INT8)
def relu(b, x):
    _unary(b, "RELU", x)


@lowering("Sigmoid", since=6, emits=("LOGISTIC",), layout="any", dtypes=INT8)
def sigmoid(b, x):
    _unary(b, "LOGISTIC", x)


@lowering("Tanh", since=6, emits=("TANH",), layout="any", dtypes=INT8)
def tanh(b, x):
    _unary(b, "TANH", x)


@lowering("LeakyRelu", since=6, emits=("LEAKY_RELU",), layout="any", dtypes=INT8)
def leaky_relu(b, x, *, alpha=0.01):
    _unary(b, "LEAKY_RELU", x, alpha=float(alpha))


@lowering("HardSwish", since=14, emits=("HARD_SWISH",), layout="any", dtypes=INT8)
def hard_swish(b, x):
    _unary(b, "HARD_SWISH", x)


@lowering("PRelu", since=7, emits=("PRELU",), layout="any", dtypes=INT8)
def prelu(b, x, slope):
    out = b.outputs[0]
    b.emit("PRELU", [b.t(x), b.operand(slope, out)], [b.out(out)])


def _clip(b, x, lo, hi):
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    named = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, math.inf): "RELU"}
    if (lo, hi) in named:
        return _unary(b, named[(lo, hi)], x)
    out = b.outputs[0]
    src = b.t(x)
    if lo > -math.inf:
        dest = b.out(out) if hi == math.inf else b.like(out, hint="lower")
        b.emit("MAXIMUM", [src, scalar_like(b, out, lo, "min")], [dest])
        src = dest
    if hi < math.inf:
        b.emit("MINIMUM", [src, scalar_like(b, out, hi, "max")], [b.out(out)])
    if lo == -math.inf and hi == math.inf:
        b.alias(out, src)


CLIP_EMITS = ("RELU", "RELU6", "RELU_N1_TO_1", "MAXIMUM", "MINIMUM")


@lowering("Clip", since=6, emits=CLIP_EMITS, layout="any", dtypes=INT8)
def clip_6(b, x, *, max=3.4028234663852886e38, min=-3.4028234663852886e38):  # noqa: A002 - ONNX's names
    _clip(b, x, None if min <= -3.4e38 else min, None if max >= 3.4e38 else max)


@lowering("Clip", since=11, emits=CLIP_EMITS, layout="any", dtypes=INT8)
def clip_11(b, x, lo=None, hi=None):
    lo_v, hi_v = const_of(lo, "min"), const_of(hi, "max")
    _clip(b, x, None if lo_v is None else float(lo_v), None if hi_v is None else float(hi_v))


@lowering("HardSigmoid", since=6, emits=("MUL", "ADD", "MAXIMUM", "MINIMUM"), layout="any")
def hard_sigmoid(b, x, *, alpha=0.2, beta=0.5):
    out = b.outputs[0]
    shape = out.phys_shape
    scaled, shifted, floored = (b.temp(shape, hint=h) for h in ("scaled", "shifted", "floored"))
    b.emit("MUL", [b.t(x), _scalar(b, alpha, "alpha")], [scaled])
    b.emit("ADD", [scaled, _scalar(b, beta, "beta")], [shifted])
    b.emit("MAXIMUM", [shifted, _scalar(b, 0.0, "zero")], [floored])
    b.emit("MINIMUM", [floored, _scalar(b, 1.0, "one")], [b.out(out)])


@lowering("Elu", since=6, emits=("ELU", "MINIMUM", "EXP", "SUB", "MUL", "RELU", "ADD"), layout="any")
def elu(b, x, *, alpha=1.0):
    if alpha == 1.0:
        return _unary(b, "ELU", x)
    out = b.outputs[0]
    t = {h: b.temp(out.phys_shape, hint=h) for h in ("neg_part", "exp", "expm1", "scaled", "pos_part")}
    b.emit("MINIMUM", [b.t(x), _scalar(b, 0.0, "zero")], [t["neg_part"]])
    b.emit("EXP", [t["neg_part"]], [t["exp"]])
    b.emit("SUB", [t["exp"], _scalar(b, 1.0, "one")], [t["expm1"]])
    b.emit("MUL", [t["expm1"], _scalar(b, alpha, "alpha")], [t["scaled"]])
    b.emit("RELU", [b.t(x)], [t["pos_part"]])
    b.emit("ADD", [t["pos_part"], t["scaled"]], [b.out(out)])


SOFTPLUS_EMITS = ("ABS", "NEG", "EXP", "ADD", "LOG", "RELU")


def _softplus(b, x, dest):
    """log(1 + exp(x)) computed as relu(x) + log(1 + exp(-|x|)), which cannot overflow."""
    t = {h: b.temp(b.outputs[0].phys_shape, hint=h) for h in ("abs", "neg", "exp", "plus1", "log", "relu")}
    b.emit("ABS", [b.t(x)], [t["abs"]])
    b.emit("NEG", [t["abs"]], [t["neg"]])
    b.emit("EXP", [t["neg"]], [t["exp"]])
    b.emit("ADD", [t["exp"], _scalar(b, 1.0, "one")], [t["plus1"]])
    b.emit("LOG", [t["plus1"]], [t["log"]])
    b.emit("RELU", [b.t(x)], [t["relu"]])
    b.emit("ADD", [t["relu"], t["log"]], [dest])


@lowering("Softplus", since=1, emits=SOFTPLUS_EMITS, layout="any")
def softplus(b, x):
    _softplus(b, x, b.out(b.outputs[0]))


@lowering("Mish", since=18, emits=SOFTPLUS_EMITS + ("TANH", "MUL"), layout="any")
def mish(b, x):
    """x · tanh(softplus(x))."""
    out = b.outputs[0]
    soft, squashed = b.temp(out.phys_shape, hint="softplus"), b.temp(out.phys_shape, hint="tanh")
    _softplus(b, x, soft)
    b.emit("TANH", [soft], [squashed])
    b.emit("MUL", [b.t(x), squashed], [b.out(out)])


@lowering("Selu", since=6, emits=("ELU", "RELU", "MINIMUM", "MUL", "ADD"), layout="any")
def selu(b, x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    """gamma · (relu(x) + alpha · min(elu(x), 0)): ELU's negative part is exp(x) - 1."""
    out = b.outputs[0]
    t = {h: b.temp(out.phys_shape, hint=h) for h in ("elu", "neg_part", "pos_part", "scaled_neg", "scaled_pos")}
    b.emit("ELU", [b.t(x)], [t["elu"]])
    b.emit("MINIMUM", [t["elu"], _scalar(b, 0.0, "zero")], [t["neg_part"]])
    b.emit("RELU", [b.t(x)], [t["pos_part"]])
    b.emit("MUL", [t["neg_part"], _scalar(b, gamma * alpha, "gamma_alpha")], [t["scaled_neg"]])
    b.emit("MUL", [t["pos_part"], _scalar(b, gamma, "gamma")], [t["scaled_pos"]])
    b.emit("ADD", [t["scaled_pos"], t["scaled_neg"]], [b.out(out)])


@lowering("Celu", since=12, emits=("ELU", "MUL"), layout="any")
def celu(b, x, *, alpha=1.0):
    """alpha · elu(x / alpha), which is max(0, x) + min(0, alpha · (exp(x / alpha) - 1)) for alpha > 0."""
    if not alpha > 0:
        raise Unsupported(f"alpha={alpha}: CELU is defined for a positive alpha (the ELU composition needs it)",
                          hint="Use a positive alpha.")
    if alpha == 1.0:
        return _unary(b, "ELU", x)
    out = b.outputs[0]
    scaled, elu_ = b.temp(out.phys_shape, hint="scaled"), b.temp(out.phys_shape, hint="elu")
    b.emit("MUL", [b.t(x), _scalar(b, 1.0 / alpha, "inv_alpha")], [scaled])
    b.emit("ELU", [scaled], [elu_])
    b.emit("MUL", [elu_, _scalar(b, alpha, "alpha")], [b.out(out)])


@lowering("ThresholdedRelu", since=10, emits=("GREATER", "SELECT_V2"), layout="any")
def thresholded_relu(b, x, *, alpha=1.0):
    """x where x > alpha, else 0."""
    out = b.outputs[0]
    above = b.temp(out.phys_shape, np.bool_, hint="above")
    b.emit("GREATER", [b.t(x), _scalar(b, alpha, "alpha")], [above])
    b.emit("SELECT_V2", [above, b.t(x), _scalar(b, 0.0, "zero")], [b.out(out)])


@lowering("Softsign", since=1, emits=("ABS", "ADD", "DIV"), layout="any")
def softsign(b, x):
    """x / (1 + |x|)."""
    out = b.outputs[0]
    magnitude, denom = b.temp(out.phys_shape, hint="abs"), b.temp(out.phys_shape, hint="denom")
    b.emit("ABS", [b.t(x)], [magnitude])
    b.emit("ADD", [magnitude, _scalar(b, 1.0, "one")], [denom])
    b.emit("DIV", [b.t(x), denom], [b.out(out)])


@lowering("Shrink", since=9, emits=("LESS", "GREATER", "ADD", "SUB", "SELECT_V2"), layout="any")
def shrink(b, x, *, bias=0.0, lambd=0.5):
    """x + bias where x < -lambd, x - bias where x > lambd, else 0."""
    out = b.outputs[0]
    t = {h: b.temp(out.phys_shape, np.bool_ if h in ("below", "above") else np.float32, hint=h)
         for h in ("below", "above", "raised", "lowered", "upper")}
    b.emit("LESS", [b.t(x), _scalar(b, -lambd, "minus_lambd")], [t["below"]])
    b.emit("GREATER", [b.t(x), _scalar(b, lambd, "lambd")], [t["above"]])
    b.emit("ADD", [b.t(x), _scalar(b, bias, "bias")], [t["raised"]])
    b.emit("SUB", [b.t(x), _scalar(b, bias, "bias")], [t["lowered"]])
    b.emit("SELECT_V2", [t["above"], t["lowered"], _scalar(b, 0.0, "zero")], [t["upper"]])
    b.emit("SELECT_V2", [t["below"], t["raised"], t["upper"]], [b.out(out)])


@lowering("Swish", since=24, emits=("LOGISTIC", "MUL"), layout="any")
def swish(b, x, *, alpha=1.0):
    """x · sigmoid(alpha · x)."""
    out = b.outputs[0]
    src = b.t(x)
    if alpha != 1.0:
        src = b.temp(out.phys_shape, hint="scaled")
        b.emit("MUL", [b.t(x), _scalar(b, alpha, "alpha")], [src])
    gate = b.temp(out.phys_shape, hint="gate")
    b.emit("LOGISTIC", [src], [gate])
    b.emit("MUL", [b.t(x), gate], [b.out(out)])

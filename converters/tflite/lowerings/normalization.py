"""Normalisation: BatchNormalization (MUL + ADD when not folded into a conv), LRN, Softmax, LogSoftmax."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of, require_rank
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import physical


def _batchnorm(b, x, scale, bias, mean, var, epsilon):
    y = b.outputs[0]
    s, sh, m, v = (const_of(p, n).astype(np.float64) for p, n in
                   ((scale, "scale"), (bias, "B"), (mean, "mean"), (var, "var")))
    k = s / np.sqrt(v + epsilon)
    shape = [1] * x.rank
    shape[physical(1, x)] = -1
    scaled = b.temp(y.phys_shape, hint="scaled")
    b.emit("MUL", [b.t(x), b.const(k.reshape(shape), np.float32, "scale")], [scaled])
    b.emit("ADD", [scaled, b.const((sh - m * k).reshape(shape), np.float32, "shift")], [b.out(y)])


@lowering("BatchNormalization", since=9, emits=("MUL", "ADD"), layout="any")
def batchnorm_9(b, x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9):
    _batchnorm(b, x, scale, bias, mean, var, epsilon)


@lowering("BatchNormalization", since=14, emits=("MUL", "ADD"), layout="any")
def batchnorm_14(b, x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    if training_mode:
        raise Unsupported("training_mode=1", hint="Export the model in eval() mode.")
    if len(b.outputs) > 1 and any(o is not None for o in b.outputs[1:]):
        raise Unsupported("running mean/var outputs are used")
    _batchnorm(b, x, scale, bias, mean, var, epsilon)


@lowering("LRN", emits=("LOCAL_RESPONSE_NORMALIZATION",), layout="nhwc")
def lrn(b, x, *, alpha=0.0001, beta=0.75, bias=1.0, size=None):
    require_rank(x, 4, "LRN over a 4-D input")
    if size % 2 == 0:
        raise Unsupported(f"size={size} is even; TFLite's window is symmetric (2*radius+1)")
    b.emit("LOCAL_RESPONSE_NORMALIZATION", [b.t(x)], [b.out(b.outputs[0])], radius=(size - 1) // 2,
           bias=float(bias), alpha=float(alpha) / size, beta=float(beta))


def _softmax_flattened(b, code, x, axis, options):
    """Opset < 13: softmax over the input coerced to 2-D at `axis`."""
    y = b.outputs[0]
    axis %= x.rank
    if axis == x.rank - 1:
        return b.emit(code, [b.t(x)], [b.out(y)], **options)
    rows = int(np.prod(x.shape[:axis])) if axis else 1
    flat = b.like(x, [rows, int(np.prod(x.shape[axis:]))], hint="as2d")
    soft = b.like(y, b.shape_of(flat), hint="softmax2d")
    b.emit("RESHAPE", [b.t(x), b.ints(b.shape_of(flat))], [flat])
    b.emit(code, [flat], [soft], **options)
    b.emit("RESHAPE", [soft, b.ints(list(y.shape))], [b.out(y)])


def _softmax_axis(b, code, x, axis, options):
    """Opset >= 13: softmax along one axis; other axes are moved last and back."""
    y = b.outputs[0]
    axis %= x.rank
    if axis == x.rank - 1:
        return b.emit(code, [b.t(x)], [b.out(y)], **options)
    perm = [a for a in range(x.rank) if a != axis] + [axis]
    inverse = list(np.argsort(perm))
    moved_shape = [x.shape[p] for p in perm]
    moved, soft = b.like(x, moved_shape, hint="axis_last"), b.like(y, moved_shape, hint="softmax_last")
    b.emit("TRANSPOSE", [b.t(x), b.ints(perm, "perm")], [moved])
    b.emit(code, [moved], [soft], **options)
    b.emit("TRANSPOSE", [soft, b.ints(inverse, "perm_back")], [b.out(y)])


@lowering("Softmax", since=1, emits=("SOFTMAX", "RESHAPE"), dynamic_batch=False, dtypes=("float32", "int8"))
def softmax_1(b, x, *, axis=1):
    _softmax_flattened(b, "SOFTMAX", x, axis, {"beta": 1.0})


@lowering("Softmax", since=13, emits=("SOFTMAX", "TRANSPOSE"), dtypes=("float32", "int8"))
def softmax_13(b, x, *, axis=-1):
    _softmax_axis(b, "SOFTMAX", x, axis, {"beta": 1.0})


@lowering("LogSoftmax", since=1, emits=("LOG_SOFTMAX", "RESHAPE"), dynamic_batch=False)
def log_softmax_1(b, x, *, axis=1):
    _softmax_flattened(b, "LOG_SOFTMAX", x, axis, {})


@lowering("LogSoftmax", since=13, emits=("LOG_SOFTMAX", "TRANSPOSE"))
def log_softmax_13(b, x, *, axis=-1):
    _softmax_axis(b, "LOG_SOFTMAX", x, axis, {})

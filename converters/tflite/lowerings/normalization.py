"""Normalisation: BatchNormalization (MUL + ADD when not folded into a conv), LRN, Softmax, LogSoftmax; the statistics
ones (InstanceNormalization, GroupNormalization, MeanVarianceNormalization, RMSNormalization) as MEAN / RSQRT
compositions, and LpNormalization. LayerNormalization lives with the transformer blocks (attention.py).

Variances are computed as MEAN((x - MEAN(x))^2), never E[x^2] - E[x]^2, which cancels catastrophically in float32."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of, require_rank
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape, physical


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


def _inference_only(b, spatial=1):
    """Opset 7-8 forms: `spatial=0` normalises per element (parameters shaped like x without the batch); only the
    running-statistics outputs of training are refused."""
    if len(b.outputs) > 1 and any(o is not None for o in b.outputs[1:]):
        raise Unsupported("its running mean/var (training) outputs are used", hint="Export the model in eval() mode.")
    if not spatial:
        raise Unsupported("spatial=0 (statistics per element, not per channel)",
                          hint="Re-export with spatial=1 (every framework's BatchNorm is per channel).")


@lowering("BatchNormalization", since=7, emits=("MUL", "ADD"), layout="any")
def batchnorm_7(b, x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9, spatial=1):
    _inference_only(b, spatial)
    _batchnorm(b, x, scale, bias, mean, var, epsilon)


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


def _emit(b, code, inputs, shape, hint, dest=None, **options) -> str:
    """Emit `code` into `dest` or a new float temporary of `shape`; the tensor written."""
    dest = dest or b.temp(shape, hint=hint)
    b.emit(code, inputs, [dest], **options)
    return dest


def _broadcast_shape(a, c) -> list:
    return [y if x == 1 else x for x, y in zip(a, c)]


def _scalar(b, value, rank, hint) -> str:
    return b.const(np.full([1] * rank, value, np.float32), hint=hint)


def _parameter(b, value, shape, hint) -> str:
    """A scale or bias input reshaped to the memory shape it broadcasts as."""
    if value.is_const:
        return b.const(value.const.astype(np.float32).reshape(shape), hint=hint)
    return _emit(b, "RESHAPE", [b.t(value), b.ints(shape)], shape, hint)


def _standardize(b, src, shape, axes, epsilon):
    """(x - mean) and 1 / sqrt(variance + epsilon) over memory `axes` of `src`: (centred, inv_std, stats shape)."""
    stats = [1 if i in axes else d for i, d in enumerate(shape)]
    axes_t = b.ints(axes, "axes")
    mean = _emit(b, "MEAN", [src, axes_t], stats, "mean", keepDims=True)
    centred = _emit(b, "SUB", [src, mean], shape, "centred")
    squared = _emit(b, "MUL", [centred, centred], shape, "squared")
    var = _emit(b, "MEAN", [squared, axes_t], stats, "variance", keepDims=True)
    shifted = _emit(b, "ADD", [var, _scalar(b, epsilon, len(shape), "epsilon")], stats, "variance_eps")
    return centred, _emit(b, "RSQRT", [shifted], stats, "inv_std"), stats


def _affine(b, centred, shape, inv, stats, scale, bias, dest):
    """dest = centred * (inv * scale) + bias; the factor is computed at the statistics' (small) size."""
    factor = _emit(b, "MUL", [inv, scale], _broadcast_shape(stats, b.shape_of(scale)), "factor")
    if bias is None:
        return _emit(b, "MUL", [centred, factor], shape, "scaled", dest)
    scaled = _emit(b, "MUL", [centred, factor], shape, "scaled")
    return _emit(b, "ADD", [scaled, bias], shape, "shifted", dest)


STATS_OPS = ("MEAN", "SUB", "MUL", "ADD", "RSQRT", "RESHAPE")


@lowering("InstanceNormalization", since=6, emits=STATS_OPS, layout="any")
def instance_normalization(b, x, scale, bias, *, epsilon=1e-5):
    """Statistics per sample and channel over the spatial axes."""
    shape = list(x.phys_shape)
    channel, batch = physical(1, x), physical(0, x)
    axes = [i for i in range(x.rank) if i not in (channel, batch)]
    param = [shape[channel] if i == channel else 1 for i in range(x.rank)]
    centred, inv, stats = _standardize(b, b.t(x), shape, axes, epsilon)
    _affine(b, centred, shape, inv, stats, _parameter(b, scale, param, "scale"), _parameter(b, bias, param, "bias"),
            b.out(b.outputs[0]))


def _require_float32_stash(stash_type):
    if stash_type != 1:
        raise Unsupported(f"stash_type={stash_type} asks for statistics in another precision; TFLite computes them "
                          "in float32 here", hint="Export with stash_type=1 (float32).")


@lowering("GroupNormalization", since=21, emits=STATS_OPS, layout="any")
def group_normalization(b, x, scale, bias, *, epsilon=1e-5, num_groups, stash_type=1):
    """Split the channel axis in memory into (groups, channels per group) - a reshape in any layout - and take
    statistics per sample and group over the rest; scale and bias are per channel. (Opset 18's per-group form is
    deprecated: onnx.checker, and so the importer, refuses models that use it.)"""
    _require_float32_stash(stash_type)
    y = b.outputs[0]
    shape = list(x.phys_shape)
    channel, batch = physical(1, x), physical(0, x)
    channels = shape[channel]
    if channels % num_groups:
        raise Unsupported(f"num_groups={num_groups} does not divide the {channels} channels")
    grouped = shape[:channel] + [num_groups, channels // num_groups] + shape[channel + 1:]
    batch = batch + 1 if batch > channel else batch
    axes = [i for i in range(len(grouped)) if i not in (batch, channel)]
    param = [1] * len(grouped)
    param[channel:channel + 2] = [num_groups, channels // num_groups]
    src = _emit(b, "RESHAPE", [b.t(x), b.ints(dims_for_reshape(grouped))], grouped, "grouped")
    centred, inv, stats = _standardize(b, src, grouped, axes, epsilon)
    out = _affine(b, centred, grouped, inv, stats, _parameter(b, scale, param, "scale"),
                  _parameter(b, bias, param, "bias"), None)
    b.emit("RESHAPE", [out, b.ints(dims_for_reshape(shape))], [b.out(y)])


def _mvn(b, x, axes):
    """(x - mean) / (sqrt(variance) + 1e-9), as ONNX's function body writes it."""
    shape = list(x.phys_shape)
    axes = sorted(physical(a, x) for a in axes)
    stats = [1 if i in axes else d for i, d in enumerate(shape)]
    axes_t = b.ints(axes, "axes")
    mean = _emit(b, "MEAN", [b.t(x), axes_t], stats, "mean", keepDims=True)
    centred = _emit(b, "SUB", [b.t(x), mean], shape, "centred")
    squared = _emit(b, "MUL", [centred, centred], shape, "squared")
    var = _emit(b, "MEAN", [squared, axes_t], stats, "variance", keepDims=True)
    std = _emit(b, "SQRT", [var], stats, "std")
    std_eps = _emit(b, "ADD", [std, _scalar(b, 1e-9, x.rank, "epsilon")], stats, "std_eps")
    b.emit("DIV", [centred, std_eps], [b.out(b.outputs[0])])


@lowering("MeanVarianceNormalization", since=9, emits=("MEAN", "SUB", "MUL", "SQRT", "ADD", "DIV"), layout="any")
def mean_variance_normalization(b, x, *, axes=(0, 2, 3)):
    _mvn(b, x, axes)


@lowering("LpNormalization", since=1, emits=("ABS", "MUL", "SUM", "SQRT", "DIV", "EQUAL", "SELECT_V2"), layout="any")
def lp_normalization(b, x, *, axis=-1, p=2):
    """x / ||x||_p along `axis`, 0 where the norm is 0 (as ONNX's reference and Runtime give)."""
    if p not in (1, 2):
        raise Unsupported(f"p={p}; ONNX defines LpNormalization for p=1 and p=2 only")
    y = b.outputs[0]
    shape = list(x.phys_shape)
    a = physical(axis, x)
    stats = [1 if i == a else d for i, d in enumerate(shape)]
    src = b.t(x)
    powered = _emit(b, "ABS", [src], shape, "abs") if p == 1 else _emit(b, "MUL", [src, src], shape, "squared")
    norm = _emit(b, "SUM", [powered, b.ints([a], "axes")], stats, "norm", keepDims=True)
    if p == 2:
        norm = _emit(b, "SQRT", [norm], stats, "l2norm")
    zero = b.temp(stats, np.bool_, hint="zero_norm")
    b.emit("EQUAL", [norm, _scalar(b, 0.0, x.rank, "zero")], [zero])
    ratio = _emit(b, "DIV", [src, norm], shape, "ratio")
    b.emit("SELECT_V2", [zero, _scalar(b, 0.0, x.rank, "zero"), ratio], [b.out(y)])


@lowering("RMSNormalization", since=23, emits=("MUL", "MEAN", "ADD", "RSQRT"))
def rms_normalization(b, x, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    """y = x * rsqrt(mean(x^2) + epsilon) * scale over the axes from `axis` on."""
    _require_float32_stash(stash_type)
    y = b.outputs[0]
    axis %= x.rank
    shape = list(x.shape)
    stats = shape[:axis] + [1] * (x.rank - axis)
    squared = _emit(b, "MUL", [b.t(x), b.t(x)], shape, "squared")
    mean = _emit(b, "MEAN", [squared, b.ints(list(range(axis, x.rank)), "axes")], stats, "mean_square",
                 keepDims=True)
    shifted = _emit(b, "ADD", [mean, _scalar(b, epsilon, x.rank, "epsilon")], stats, "mean_square_eps")
    inv = _emit(b, "RSQRT", [shifted], stats, "inv_rms")
    if scale.is_const and np.all(scale.const == 1):
        return b.emit("MUL", [b.t(x), inv], [b.out(y)])
    normed = _emit(b, "MUL", [b.t(x), inv], shape, "normalized")
    b.emit("MUL", [normed, b.operand(scale, y)], [b.out(y)])

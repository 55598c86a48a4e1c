"""Index-picking ops in whatever layout the input has: ArgMax, ArgMin (ARG_MAX / ARG_MIN, which keep the first of
equal values; select_last_index=1 runs them over the axis reversed and maps the index back) and Hardmax
(ARG_MAX then ONE_HOT)."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings.reduce import perm_without
from edgekit.converters.tflite.registry import lowering
from edgekit.converters.tflite.tfl import dims_for_reshape, physical

#: what ARG_MAX / ARG_MIN are run on here (narrower integers are widened to int32 by the integer-dtypes pass)
ARG_DTYPES = ("float32", "int32")


def arg_perm(node, perm, graph):
    """Layout of the indices: the input's, less the reduced axis when keepdims=0."""
    if perm is None or node.attrs.get("keepdims", 1):
        return perm
    return perm_without(perm, [node.attrs.get("axis", 0) % len(perm)])


def _tensor_type(dtype) -> int:
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    return getattr(schema().TensorType, TENSOR_TYPES[np.dtype(dtype).name])


def _arg(b, code, x, axis, keepdims, select_last_index):
    y = b.outputs[0]
    p = physical(axis, x)
    axis_t = b.ints([p], "axis")
    src = b.t(x)
    if select_last_index:
        src = b.like(x, hint="reversed")
        b.emit("REVERSE_V2", [b.t(x), axis_t], [src])
    reduced = [d for i, d in enumerate(x.phys_shape) if i != p]
    steps = [("index", reduced)]
    if select_last_index:
        steps.append(("from_end", reduced))
    if keepdims:
        steps.append(("kept", list(y.phys_shape)))
    dests = [b.temp(shape, y.dtype, hint=hint) for hint, shape in steps[:-1]] + [b.out(y)]
    b.emit(code, [src, axis_t], [dests[0]], outputType=_tensor_type(y.dtype))
    if select_last_index:  # the first index from the end is the last one: n - 1 - i
        last = b.const(np.full([1] * len(reduced), x.phys_shape[p] - 1, y.dtype), hint="last")
        b.emit("SUB", [last, dests[0]], [dests[1]])
    if keepdims:
        b.emit("EXPAND_DIMS", [dests[-2], b.ints(p, "axis")], [dests[-1]])


def _register(op, code):
    emits = (code, "REVERSE_V2", "SUB", "EXPAND_DIMS")

    @lowering(op, since=1, emits=emits, layout="any", out_perm=arg_perm, dtypes=ARG_DTYPES)
    def arg_1(b, x, *, axis=0, keepdims=1):
        _arg(b, code, x, axis, keepdims, 0)

    @lowering(op, since=12, emits=emits, layout="any", out_perm=arg_perm, dtypes=ARG_DTYPES)
    def arg_12(b, x, *, axis=0, keepdims=1, select_last_index=0):
        _arg(b, code, x, axis, keepdims, select_last_index)


_register("ArgMax", "ARG_MAX")
_register("ArgMin", "ARG_MIN")


def _one_hot_of_max(b, src, shape, p, dest):
    """dest = 1.0 where `src` (a tensor of `shape`) has the first maximum along memory axis `p`, else 0.0."""
    index = b.temp([d for i, d in enumerate(shape) if i != p], np.int32, hint="argmax")
    b.emit("ARG_MAX", [src, b.ints([p], "axis")], [index], outputType=_tensor_type(np.int32))
    b.emit("ONE_HOT", [index, b.ints(shape[p], "depth"), b.const(np.float32(1), hint="on"),
                       b.const(np.float32(0), hint="off")], [dest], axis=p)


@lowering("Hardmax", since=1, emits=("ARG_MAX", "ONE_HOT", "RESHAPE"), dynamic_batch=False)
def hardmax_1(b, x, *, axis=1):
    """Opset < 13: one-hot of the maximum over the input coerced to 2-D at `axis`."""
    y = b.outputs[0]
    axis %= x.rank
    if axis == x.rank - 1:
        return _one_hot_of_max(b, b.t(x), list(x.shape), axis, b.out(y))
    flat_shape = [int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))]
    flat, hard = b.like(x, flat_shape, hint="as2d"), b.like(y, flat_shape, hint="hardmax2d")
    b.emit("RESHAPE", [b.t(x), b.ints(flat_shape)], [flat])
    _one_hot_of_max(b, flat, flat_shape, 1, hard)
    b.emit("RESHAPE", [hard, b.ints(dims_for_reshape(y.shape))], [b.out(y)])


@lowering("Hardmax", since=13, emits=("ARG_MAX", "ONE_HOT"), layout="any")
def hardmax_13(b, x, *, axis=-1):
    _one_hot_of_max(b, b.t(x), list(x.phys_shape), physical(axis, x), b.out(b.outputs[0]))

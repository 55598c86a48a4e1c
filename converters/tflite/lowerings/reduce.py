"""Reductions in whatever layout the input has: ReduceMean, ReduceSum, ReduceMax (axes as attribute
in older opsets, as an input from opset 13 (Sum) / 18 (Mean, Max)); CumSum over run-time data."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import normalize_perm
from edgekit.converters.tflite.lowerings._common import const_of, norm_axes
from edgekit.converters.tflite.registry import lowering
from edgekit.converters.tflite.tfl import physical


def _axes_of(node, graph, rank):
    if "axes" in node.attrs:
        axes = node.attrs["axes"]
    elif len(node.inputs) > 1 and node.inputs[1]:
        value = graph.value(node.inputs[1])
        axes = value.const if value.is_const else None
    else:
        axes = None
    if axes is None or len(axes) == 0:
        return None if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return norm_axes(axes, rank)


def reduced_perm(node, perm, graph):
    """Layout of the output: with keepdims=0 the surviving axes keep their memory order."""
    if perm is None or node.attrs.get("keepdims", 1):
        return perm
    axes = _axes_of(node, graph, len(perm))
    if axes is None or any(graph.value(n) is not None and not graph.value(n).is_const for n in node.inputs[1:2]):
        return None
    kept = [a for a in perm if a not in axes]
    remap = {a: i for i, a in enumerate(sorted(kept))}
    return normalize_perm([remap[a] for a in kept])


def _reduce(b, code, x, axes, keepdims, noop_with_empty_axes=0):
    y = b.outputs[0]
    if axes is None or len(axes) == 0:
        if noop_with_empty_axes:
            return b.alias(y, b.t(x))
        axes = range(x.rank)
    phys_axes = sorted(physical(a, x) for a in norm_axes(axes, x.rank))
    b.emit(code, [b.t(x), b.ints(phys_axes, "axes")], [b.out(y)], keepDims=bool(keepdims))


def _register(op, code, input_since):
    @lowering(op, since=1, emits=(code,), layout="any", out_perm=reduced_perm, dtypes=("float32", "int8"))
    def with_attribute(b, x, *, axes=None, keepdims=1):
        _reduce(b, code, x, axes, keepdims)

    @lowering(op, since=input_since, emits=(code,), layout="any", out_perm=reduced_perm, dtypes=("float32", "int8"))
    def with_input(b, x, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        _reduce(b, code, x, const_of(axes, "axes"), keepdims, noop_with_empty_axes)


_register("ReduceMean", "MEAN", 18)
_register("ReduceSum", "SUM", 13)
_register("ReduceMax", "REDUCE_MAX", 18)


@lowering("CumSum", since=11, emits=("CUMSUM",))
def cumsum(b, x, axis, *, exclusive=0, reverse=0):
    """A running sum over run-time data (over constants, e.g. position ids, constant folding computes it)."""
    axis = int(np.asarray(const_of(axis, "axis")).reshape(-1)[0]) % x.rank
    b.emit("CUMSUM", [b.t(x), b.const(np.asarray(axis, np.int32), hint="axis")], [b.out(b.outputs[0])],
           exclusive=bool(exclusive), reverse=bool(reverse))

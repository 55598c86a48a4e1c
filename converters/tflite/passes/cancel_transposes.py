"""Transpose cancellation on the TFLite graph: back-to-back layout changes collapse.

    TRANSPOSE(TRANSPOSE(x, p), q) -> x                 when p then q is the identity (else one TRANSPOSE)
    TRANSPOSE(x, p)               -> RESHAPE(x)        when p only moves size-1 dimensions
    RESHAPE(RESHAPE(x))           -> RESHAPE(x);  RESHAPE(x) to x's own static shape -> x
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.tfl import TflGraph


def run(graph: TflGraph, options=None) -> None:
    while _one_rewrite(graph):
        pass
    graph.prune()


def _one_rewrite(g: TflGraph) -> bool:
    producers, consumers = g.producers(), g.consumers()
    for op in g.ops:
        if op.code not in ("TRANSPOSE", "RESHAPE"):
            continue
        src = op.inputs[0]
        first = producers.get(src)
        single = len(consumers.get(src, [])) == 1 and src not in g.outputs
        if op.code == "TRANSPOSE":
            if _to_reshape(g, op):
                return True
            if first is not None and first.code == "TRANSPOSE" and single and _merge_transposes(g, first, op):
                return True
        else:
            if first is not None and first.code == "RESHAPE" and single:
                op.inputs[0] = first.inputs[0]
                return True
            shape_in, shape_out = g.tensors[src].shape, g.tensors[op.outputs[0]].shape
            if shape_in == shape_out and -1 not in shape_in and g.bypass(op, src):
                return True
    return False


def _perm_of(g: TflGraph, op) -> list:
    return [int(p) for p in g.tensors[op.inputs[1]].data]


def _merge_transposes(g: TflGraph, first, second) -> bool:
    p, q = _perm_of(g, first), _perm_of(g, second)
    combined = [p[i] for i in q]
    if combined == list(range(len(combined))):
        return g.bypass(second, first.inputs[0])
    name = f"{second.origin}/perm_merged"
    from edgekit.converters.tflite.tfl import TflTensor
    while name in g.tensors:
        name += "_"
    g.tensors[name] = TflTensor(name, [len(combined)], np.dtype(np.int32), np.asarray(combined, np.int32))
    second.inputs = [first.inputs[0], name]
    return True


def _to_reshape(g: TflGraph, op) -> bool:
    perm = _perm_of(g, op)
    shape = g.tensors[op.inputs[0]].shape
    kept = [p for p in perm if shape[p] != 1]
    if kept != sorted(kept) or shape.count(-1) > 1:
        return False
    out_shape = [shape[p] for p in perm]
    name = f"{op.origin}/as_reshape"
    from edgekit.converters.tflite.tfl import TflTensor
    while name in g.tensors:
        name += "_"
    g.tensors[name] = TflTensor(name, [len(out_shape)], np.dtype(np.int32), np.asarray(out_shape, np.int32))
    op.code, op.inputs, op.options = "RESHAPE", [op.inputs[0], name], {}
    return True

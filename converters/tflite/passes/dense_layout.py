"""Dense-layer layout folding: a flatten of an NHWC value into a dense layer, or a dense layer reshaped
into an NHWC value, needs no transpose: the dense weights are permuted at compile time instead.

    Gemm(Flatten(Relayout(x: NHWC -> NCHW)), B)  -> Gemm(PhysicalReshape(x), B[rows permuted])
    Relayout(Reshape(Gemm(a, B, C), NCHW) -> NHWC) -> PhysicalReshape(Gemm(a, B[cols permuted], C[permuted]))

`PhysicalReshape` reshapes the memory of its input into the physical shape of its output.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value


def run(graph: Graph, options=None) -> None:
    changed = True
    while changed:
        changed = _flatten_into_dense(graph) or _dense_into_reshape(graph)
    graph.prune()


def logical_index(shape, perm) -> np.ndarray:
    """For each physical position of a [N, ...] value flattened per sample, its logical flat index."""
    rest = [p - 1 for p in perm[1:]]
    return np.arange(int(np.prod(shape[1:]))).reshape(shape[1:]).transpose(rest).ravel()


def _dense_weight(graph: Graph, node: Node, feature_input: int):
    """(weight Value, axis of B that meets the features) for Gemm(transA=0)/MatMul with 2-D constant B."""
    if node.op_type not in ("Gemm", "MatMul") or node.attrs.get("transA", 0):
        return None
    b = graph.value(node.inputs[1])
    if b is None or not b.is_const or b.const.ndim != 2 or graph.value(node.inputs[0]).rank != 2:
        return None
    trans_b = node.attrs.get("transB", 0) if node.op_type == "Gemm" else 0
    in_axis = 1 if trans_b else 0
    return b, (in_axis if feature_input == 0 else 1 - in_axis)


def _replace_const(graph: Graph, node: Node, idx: int, data: np.ndarray, tag: str) -> None:
    value = graph.add_value(Value(f"{node.name}/{tag}", data.dtype, data.shape, const=np.ascontiguousarray(data)))
    node.inputs[idx] = value.name


def _flatten_into_dense(graph: Graph) -> bool:
    consumers = graph.consumers()
    for relayout in graph.nodes:
        if relayout.op_type != "Relayout" or relayout.attrs.get("perm") is not None:
            continue
        src = graph.values[relayout.inputs[0]]
        flat = graph.sole_consumer(relayout.outputs[0], consumers)
        if src.perm is None or src.perm[0] != 0 or flat is None or flat.op_type not in ("Flatten", "Reshape"):
            continue
        flat_out = graph.values[flat.outputs[0]]
        if flat_out.shape is None or list(flat_out.shape) != [src.shape[0], int(np.prod(src.shape[1:]))]:
            continue
        dense = graph.sole_consumer(flat.outputs[0], consumers)
        found = _dense_weight(graph, dense, 0) if dense is not None and dense.inputs[0] == flat.outputs[0] else None
        if found is None:
            continue
        weight, axis = found
        order = logical_index(src.shape, src.perm)
        _replace_const(graph, dense, 1, np.take(weight.const, order, axis=axis), "rows_nhwc")
        relayout.op_type, relayout.attrs, relayout.outputs = "PhysicalReshape", {}, [flat.outputs[0]]
        graph.remove_nodes([flat])
        return True
    return False


def _dense_into_reshape(graph: Graph) -> bool:
    consumers, producers = graph.consumers(), graph.producers()
    for relayout in graph.nodes:
        if relayout.op_type != "Relayout" or relayout.attrs.get("perm") is None:
            continue
        reshape = producers.get(relayout.inputs[0])
        out = graph.values[relayout.outputs[0]]
        if reshape is None or reshape.op_type != "Reshape" or out.perm[0] != 0 \
                or graph.sole_consumer(reshape.outputs[0], consumers) is not relayout:
            continue
        dense = producers.get(reshape.inputs[0])
        if dense is None or graph.sole_consumer(dense.outputs[0], consumers) is not reshape:
            continue
        y = graph.values[dense.outputs[0]]
        found = _dense_weight(graph, dense, 1)
        if found is None or y.shape is None or list(y.shape) != [out.shape[0], int(np.prod(out.shape[1:]))]:
            continue
        if not _bias_permutable(graph, dense, y.shape[1]):
            continue
        weight, axis = found
        order = logical_index(out.shape, out.perm)
        _replace_const(graph, dense, 1, np.take(weight.const, order, axis=axis), "cols_nhwc")
        if len(dense.inputs) > 2 and dense.inputs[2]:
            bias = graph.values[dense.inputs[2]].const
            if bias.size == y.shape[1]:
                _replace_const(graph, dense, 2, bias.reshape(-1)[order].reshape(bias.shape), "bias_nhwc")
        relayout.op_type, relayout.attrs, relayout.inputs = "PhysicalReshape", {}, [dense.outputs[0]]
        graph.remove_nodes([reshape])
        return True
    return False


def _bias_permutable(graph: Graph, dense: Node, features: int) -> bool:
    if len(dense.inputs) < 3 or not dense.inputs[2]:
        return True
    bias = graph.values[dense.inputs[2]]
    return bias.is_const and (bias.const.size in (1, features))

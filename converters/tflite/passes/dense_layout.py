"""Dense-layer layout folding: a flatten of an NHWC value into a dense layer, or a dense layer reshaped
into an NHWC value, needs no transpose: the dense weights are permuted at compile time instead.

    Gemm(Flatten(Relayout(x: NHWC -> NCHW)), B)  -> Gemm(PhysicalReshape(x), B[rows permuted])
    Relayout(Reshape(Gemm(a, B, C), NCHW) -> NHWC) -> PhysicalReshape(Gemm(a, B[cols permuted], C[permuted]))

`PhysicalReshape` reshapes the memory of its input into the physical shape of its output.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value
from edgekit.converters.tflite.registry import INTERNAL


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


def _replace_const(graph: Graph, node: Node, idx: int, data: np.ndarray, tag: str, quant: dict | None = None) -> None:
    value = graph.add_value(Value(f"{node.name}/{tag}", data.dtype, data.shape, const=np.ascontiguousarray(data),
                                  quant=quant))
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
        _replace_const(graph, dense, 1, np.take(weight.const, order, axis=axis), "rows_nhwc", weight.quant)
        relayout.op_type, relayout.attrs, relayout.outputs = "PhysicalReshape", {}, [flat.outputs[0]]
        relayout.domain = INTERNAL
        graph.remove_nodes([flat])
        return True
    return False


def _dense_into_reshape(graph: Graph) -> bool:
    consumers, producers = graph.consumers(), graph.producers()
    for relayout in graph.nodes:
        if relayout.op_type != "Relayout" or relayout.attrs.get("perm") is None:
            continue
        out = graph.values[relayout.outputs[0]]
        after = _elementwise_chain(graph, relayout.inputs[0], producers, consumers, scalar_only=False)
        reshape = producers.get(after[-1].inputs[0] if after else relayout.inputs[0])
        if reshape is None or reshape.op_type != "Reshape" or out.perm[0] != 0 \
                or len(consumers.get(reshape.outputs[0], [])) != 1 or reshape.outputs[0] in graph.outputs:
            continue
        before = _elementwise_chain(graph, reshape.inputs[0], producers, consumers, scalar_only=True)
        dense = producers.get(before[-1].inputs[0] if before else reshape.inputs[0])
        if dense is None or len(consumers.get(dense.outputs[0], [])) != 1 or dense.outputs[0] in graph.outputs:
            continue
        y = graph.values[dense.outputs[0]]
        found = _dense_weight(graph, dense, 1)
        if found is None or y.shape is None or list(y.shape) != [out.shape[0], int(np.prod(out.shape[1:]))]:
            continue
        if not _bias_permutable(graph, dense, y.shape[1]):
            continue
        _permute_dense_outputs(graph, dense, found, logical_index(out.shape, out.perm), y.shape[1])
        reshape.op_type, reshape.attrs, reshape.inputs = "PhysicalReshape", {}, [reshape.inputs[0]]
        reshape.domain = INTERNAL
        for node in [reshape] + after[::-1]:
            graph.values[node.outputs[0]].perm = out.perm
        for user in consumers.get(relayout.outputs[0], []):
            user.inputs = [relayout.inputs[0] if i == relayout.outputs[0] else i for i in user.inputs]
        graph.outputs = [relayout.inputs[0] if o == relayout.outputs[0] else o for o in graph.outputs]
        graph.remove_nodes([relayout])
        return True
    return False


def _permute_dense_outputs(graph: Graph, dense: Node, found, order, features: int) -> None:
    weight, axis = found
    _replace_const(graph, dense, 1, np.take(weight.const, order, axis=axis), "cols_nhwc", _take(weight.quant, order))
    if len(dense.inputs) > 2 and dense.inputs[2]:
        bias_value = graph.values[dense.inputs[2]]
        bias = bias_value.const
        if bias.size == features:
            _replace_const(graph, dense, 2, bias.reshape(-1)[order].reshape(bias.shape), "bias_nhwc",
                           _take(bias_value.quant, order))


def _take(quant: dict | None, order) -> dict | None:
    """Per-channel quantization parameters follow their channels when those are permuted."""
    if quant is None or len(quant["scale"]) == 1:
        return quant
    return dict(quant, scale=[quant["scale"][i] for i in order], zero_point=[quant["zero_point"][i] for i in order])


def _elementwise_chain(graph: Graph, name: str, producers: dict, consumers: dict, scalar_only: bool) -> list:
    """Producers of `name`, walking up, that are shape-preserving single-input ops in any layout (nearest first).

    scalar_only: other inputs must be constant scalars (the values are not 4-D yet, so nothing can be permuted).
    """
    chain = []
    node = producers.get(name)
    while node is not None and _is_elementwise(graph, node, scalar_only) \
            and len(consumers.get(node.outputs[0], [])) == 1 and node.outputs[0] not in graph.outputs:
        chain.append(node)
        node = producers.get(node.inputs[0])
    return chain


def _is_elementwise(graph: Graph, node: Node, scalar_only: bool) -> bool:
    from edgekit.converters.tflite.registry import lookup
    entry = lookup(node.op_type, graph.opset, node.domain)
    if entry is None or entry.layout != "any" or entry.out_perm is not None or len(node.outputs) != 1:
        return False
    x, y = graph.value(node.inputs[0]), graph.value(node.outputs[0])
    if x is None or x.is_const or y.shape != x.shape:
        return False
    others = [graph.value(n) for n in node.inputs[1:] if n]
    return all(v.is_const and (v.const.size == 1 or not scalar_only) for v in others)


def _bias_permutable(graph: Graph, dense: Node, features: int) -> bool:
    if len(dense.inputs) < 3 or not dense.inputs[2]:
        return True
    bias = graph.values[dense.inputs[2]]
    return bias.is_const and (bias.const.size in (1, features))

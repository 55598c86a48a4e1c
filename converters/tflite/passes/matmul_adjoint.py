"""MatMul adjoint flags: an operand that is a transpose of its last two axes is read transposed by
BATCH_MATMUL (adjX / adjY) instead of being moved by a TRANSPOSE op.

    MatMul(Transpose(a, perm=[..., -1, -2]), b)           -> BatchMatMul<adj_x=1>(a, b)
    MatMul(a, Mul(Reshape(Transpose(k, [..., -1, -2])), s)) -> BatchMatMul<adj_y=1>(a, Mul(Reshape(k), s))

Between the Transpose and the MatMul may sit a Mul/Div by a one-element constant (attention's scaling) and a
Reshape that leaves the last two dimensions alone (adding or dropping leading ones); they are rewritten to
work on the untransposed data. Every node on the way must have the MatMul path as its only reader (a swapping
Transpose kept for that says why in the conversion notes, passes._declined). Float operands only: an int8 MatMul
keeps its quantized lowering.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Graph, Node, Value
from edgekit.converters.tflite.passes._declined import decline


def run(graph: Graph, options=None) -> None:
    matmuls = [n for n in graph.nodes if n.op_type == "MatMul"]
    if [node for node in matmuls if _rewrite_one(graph, node)]:
        graph.prune()


def _rewrite_one(graph: Graph, node: Node) -> bool:
    if node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return False
    flags = {}
    for pos, key in ((0, "adj_x"), (1, "adj_y")):
        if _absorb_transpose(graph, node, pos, graph.consumers(), graph.producers()):
            flags[key] = 1
    if flags:
        index = next(i for i, n in enumerate(graph.nodes) if n is node)
        graph.nodes[index] = Node("BatchMatMul", node.name, list(node.inputs), list(node.outputs),
                                  flags, domain="edgekit", module=node.module)
    return bool(flags)


def _absorb_transpose(graph: Graph, matmul: Node, pos: int, consumers: dict, producers: dict) -> bool:
    """Find Transpose -> (Reshape | scalar Mul/Div)* -> matmul.inputs[pos]; if found, drop the Transpose."""
    chain, name = [], matmul.inputs[pos]
    other = graph.value(matmul.inputs[1 - pos])
    if not _plain_float(graph.value(name)) or not _plain_float(other) or other.rank < 2:
        return False
    while True:
        if graph.sole_consumer(name, consumers) is None:
            swap = producers.get(name)
            if swap is not None and swap.op_type == "Transpose" and _swaps_last_two(swap):
                decline(graph, f"MatMul {'adj_x' if pos == 0 else 'adj_y'}", f"'{matmul.name}'",
                        f"the transposed operand '{name}' is read elsewhere (a TRANSPOSE op is kept)")
            return False
        node = producers.get(name)
        if node is None or node.domain not in ("", "ai.onnx"):
            return False
        if node.op_type == "Transpose":
            break
        if not _passes_through(graph, node):
            return False
        chain.append(node)
        name = node.inputs[0]
    source = graph.value(node.inputs[0])
    if not _swaps_last_two(node) or not _plain_float(source):
        return False
    first = chain[-1] if chain else matmul
    first.inputs[first.inputs.index(name) if first is not matmul else pos] = node.inputs[0]
    for link in chain:
        out = graph.values[link.outputs[0]]
        out.shape = _swapped(out.shape)
        if link.op_type == "Reshape":
            target = graph.add_value(Value(f"{link.name}/adjoint_shape", np.dtype(np.int64), (out.rank,),
                                           const=np.asarray(out.shape, np.int64)))
            link.inputs[1] = target.name
            link.attrs.pop("allowzero", None)
    graph.remove_nodes([node])
    return True


def _swaps_last_two(transpose: Node) -> bool:
    perm = list(transpose.attrs.get("perm") or [])
    return len(perm) >= 2 and perm == list(range(len(perm) - 2)) + [len(perm) - 1, len(perm) - 2]


def _passes_through(graph: Graph, node: Node) -> bool:
    """A node that commutes with swapping the last two axes of its first input."""
    x, y = graph.value(node.inputs[0]), graph.value(node.outputs[0]) if node.outputs else None
    if x is None or y is None or x.shape is None or y.shape is None or not _plain_float(y):
        return False
    if node.op_type in ("Mul", "Div") and len(node.inputs) == 2:
        scale = graph.value(node.inputs[1])
        return scale is not None and scale.is_const and scale.const.size == 1 and x.shape == y.shape
    if node.op_type == "Reshape":
        return x.rank >= 2 and y.rank >= 2 and tuple(x.shape[-2:]) == tuple(y.shape[-2:]) \
            and y.shape.count(DYNAMIC) <= 1
    return False


def _plain_float(value: Value | None) -> bool:
    return value is not None and value.dtype == np.float32 and value.quant is None and value.shape is not None \
        and value.rank >= 2 and not value.is_const


def _swapped(shape) -> tuple:
    return tuple(shape[:-2]) + (shape[-1], shape[-2])

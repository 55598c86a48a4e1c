"""Small matching helpers shared by the fusion passes (not a pass itself)."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node


def fuse_all(graph: Graph, fuse_one) -> None:
    """Apply a one-match-at-a-time rewrite until it finds nothing more, then drop what became dead."""
    while fuse_one(graph):
        pass
    graph.prune()


def scalar(graph: Graph, name: str) -> float | None:
    """The value of a one-element constant input, else None."""
    value = graph.value(name)
    if value is None or not value.is_const or value.const.size != 1:
        return None
    return float(value.const.reshape(-1)[0])


def is_scalar(graph: Graph, name: str, expected: float, rtol: float = 1e-3) -> bool:
    got = scalar(graph, name)
    return got is not None and bool(np.isclose(got, expected, rtol=rtol, atol=0))


def other_input(node: Node, name: str) -> str | None:
    """The input of a binary node that is not `name` (None if `name` is not exactly one of them)."""
    if len(node.inputs) != 2 or node.inputs.count(name) != 1:
        return None
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def sole_user(graph: Graph, consumers: dict, name: str, op_type: str) -> Node | None:
    """The only reader of `name`, if it is an `op_type` node and `name` is not a graph output."""
    node = graph.sole_consumer(name, consumers)
    return node if node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx") else None


def reduce_axes(graph: Graph, node: Node, rank: int) -> list | None:
    """Normalised axes of a ReduceMean/ReduceSum (attribute or constant input), None if unknown."""
    if "axes" in node.attrs:
        axes = node.attrs["axes"]
    elif len(node.inputs) > 1 and node.inputs[1]:
        value = graph.value(node.inputs[1])
        if value is None or not value.is_const:
            return None
        axes = value.const.reshape(-1).tolist()
    else:
        return None
    return sorted({int(a) % rank for a in axes})

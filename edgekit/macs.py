"""Multiply-accumulate estimates per node, from ONNX shapes (used by inspect and profile)."""
from __future__ import annotations

import math

from edgekit.deps import require

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def estimate_macs(model) -> dict[str, tuple[str, int]]:
    """node name → (op type, MACs) for Conv, ConvTranspose, Gemm, MatMul(Integer), QLinear*, LSTM/GRU/RNN.

    Unknown (dynamic) dimensions count as 1, so figures for dynamic models are per unit of that dimension.
    """
    onnx = require("onnx", "Estimating MACs")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    shapes = _shapes(inferred.graph)
    macs = {}
    for i, node in enumerate(inferred.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        value = _node_macs(node, shapes)
        if value:
            macs[name] = (node.op_type, int(value))
    return macs


def _shapes(graph) -> dict[str, list[int]]:
    shapes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.dim_value > 0 else 1 for d in t.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return a.i if a.type == a.INT else list(a.ints) if a.ints else a.f
    return default


def _node_macs(node, shapes) -> int:
    op = node.op_type
    ins = [shapes.get(n) for n in node.input]
    out = shapes.get(node.output[0]) if node.output else None
    if op in ("Conv", "QLinearConv", "ConvInteger"):
        w = ins[3] if op == "QLinearConv" else ins[1]
        if not w or not out:
            return 0
        return math.prod(out) * math.prod(w[1:])
    if op == "ConvTranspose":
        x, w = ins[0], ins[1]
        if not x or not w:
            return 0
        return math.prod(x) * math.prod(w[1:])
    if op == "Gemm":
        a = ins[0]
        if not a or not out:
            return 0
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        return math.prod(out) * k
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = ins[0]
        if not a or not out:
            return 0
        return math.prod(out) * a[-1]
    if op in GATES:
        x, w = ins[0], ins[1]
        if not x or not w:
            return 0
        hidden = _attr(node, "hidden_size", w[1] // GATES[op])
        directions = w[0]
        steps = x[0] * x[1]  # seq * batch (layout=0) or batch * seq (layout=1): the product is the same
        return directions * steps * GATES[op] * hidden * (x[2] + hidden)
    return 0


def macs_by_op_type(macs: dict[str, tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for op, value in macs.values():
        totals[op] = totals.get(op, 0) + value
    return totals

"""Layout assignment: give every value a physical layout so convolutions and pooling see NHWC and
everything layout-agnostic follows its producers; insert `Relayout` only where layouts disagree.

    Conv(x: NCHW) -> Relayout(x, NHWC) ; Conv          (once, at the model input)
    Relu(y: NHWC) -> Relu in NHWC                       (no relayout)
    Reshape(y: NHWC) -> Relayout(y, NCHW) ; Reshape     (a RESHAPE when only size-1 dims move)

Graph outputs go back to ONNX layout, except 4-D ones under `nhwc_io`, which stay NHWC and are
recorded in `graph.io_layouts` (as are 4-D inputs, which then arrive as NHWC).
"""
from __future__ import annotations

from edgekit.converters.tflite.ir import NHWC, Graph, Node, Value
from edgekit.converters.tflite.registry import lookup


def run(graph: Graph, options=None) -> None:
    nhwc_io = bool(getattr(options, "nhwc_io", False))
    if nhwc_io:
        for name in graph.inputs:
            value = graph.values[name]
            if value.shape is not None and value.rank == 4:
                value.perm = NHWC
                graph.io_layouts[name] = "NHWC"
    cache: dict = {}
    ordered = []
    for node in graph.nodes:
        wanted, out_perm = _plan(node, graph)
        for i, perm in wanted.items():
            if graph.values[node.inputs[i]].perm != perm:
                node.inputs[i] = _relayout(graph, node.inputs[i], perm, cache, ordered)
        for out in node.outputs:
            if out and graph.values[out].shape is not None:
                graph.values[out].perm = out_perm if out_perm and len(out_perm) == graph.values[out].rank else None
        ordered.append(node)
    graph.nodes = ordered
    _restore_outputs(graph, nhwc_io)


def _plan(node: Node, graph: Graph):
    """{input index: layout it must arrive in}, and the layout of the outputs."""
    entry = lookup(node.op_type, graph.opset, node.domain)
    policy = entry.layout if entry else "logical"
    dynamic = {i: graph.values[n] for i, n in enumerate(node.inputs) if n and not graph.values[n].is_const}
    if policy == "nhwc" and 0 in dynamic and dynamic[0].shape is not None and dynamic[0].rank == 4:
        return {0: NHWC}, NHWC
    if policy == "any" and dynamic:
        target = _common_layout(dynamic.values())
        out_perm = entry.out_perm(node, target, graph) if entry.out_perm else target
        return {i: target for i in dynamic}, out_perm
    return {i: None for i in dynamic}, None


def _common_layout(values) -> tuple | None:
    """The layout an elementwise op should run in: its inputs' shared one, else the first non-ONNX one."""
    values = list(values)
    if any(v.shape is None for v in values):
        return None
    rank = max(v.rank for v in values)
    if any(v.rank != rank for v in values):
        return None  # broadcasting a lower-rank value: run in ONNX layout
    perms = [v.perm for v in values if v.perm is not None]
    return perms[0] if perms else None


def _relayout(graph: Graph, name: str, perm, cache: dict, ordered: list) -> str:
    key = (name, perm)
    if key not in cache:
        src = graph.values[name]
        tag = "nhwc" if perm == NHWC else ("onnx" if perm is None else "perm" + "".join(map(str, perm)))
        out = graph.add_value(Value(f"{name}/{tag}", src.dtype, src.shape, perm=perm, quant=src.quant))
        ordered.append(Node("Relayout", f"{name}/to_{tag}", [name], [out.name],
                            {"perm": list(perm) if perm else None}, domain="edgekit"))
        cache[key] = out.name
    return cache[key]


def _restore_outputs(graph: Graph, nhwc_io: bool) -> None:
    for idx, name in enumerate(graph.outputs):
        value = graph.values[name]
        if value.perm is None:
            continue
        if nhwc_io and value.perm == NHWC:
            graph.io_layouts[name] = "NHWC"
            continue
        inner = graph.add_value(Value(f"{name}/physical", value.dtype, value.shape, perm=value.perm, quant=value.quant))
        for node in graph.nodes:
            node.outputs = [inner.name if o == name else o for o in node.outputs]
            node.inputs = [inner.name if i == name else i for i in node.inputs]
        value.perm = None
        graph.nodes.append(Node("Relayout", f"{name}/to_onnx", [inner.name], [name], {"perm": None}, domain="edgekit"))

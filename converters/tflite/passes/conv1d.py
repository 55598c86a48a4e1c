"""1-D convolution and pooling become their 2-D forms over a unit height, so BatchNorm folding, activation fusion
and the NHWC layout machinery apply unchanged:

    Conv(x: [N,C,L], W: [O,I,K])  -> Squeeze(Conv(Unsqueeze(x, 2), W: [O,I,1,K]), 2)   (kernel_shape, strides,
    ConvTranspose, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool alike        pads, dilations,
                                                                                       output_padding/shape gain
                                                                                       the unit dimension)
Then the unit axis is kept between layers: elementwise ops reading Squeeze(axis 2) outputs move after the Squeeze
(their other rank-3 inputs get an Unsqueeze), and Unsqueeze(Squeeze(x, 2), 2) -> x, so a stack of 1-D layers is one
NHWC chain with reshapes only at its ends.
"""
from __future__ import annotations

import numpy as np
from edgekit.converters.tflite.ir import Graph, Node, Value

#: ops rewritten to 2-D, with their attributes that list one value per spatial axis and what the unit axis gets
WINDOWED = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
PER_AXIS = {"kernel_shape": 1, "strides": 1, "dilations": 1, "output_padding": 0, "output_shape": 1}
#: rank-preserving ops that may run on [N,C,1,L] instead of [N,C,L]: per-element, or per-channel on axis 1
UNARY = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Elu", "Selu", "Softplus", "Clip",
         "Identity", "Neg", "Abs", "Exp", "Sqrt", "Erf", "Gelu", "Mish", "BatchNormalization", "Dropout"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}


def run(graph: Graph, options=None) -> None:
    rewritten = [node for node in list(graph.nodes) if _lift(graph, node)]
    if not rewritten:
        return
    while _sink_one(graph):
        pass
    _cancel_pairs(graph)
    graph.prune()


def _rank3(graph: Graph, name: str) -> bool:
    value = graph.value(name)
    return value is not None and value.shape is not None and value.rank == 3 and not value.is_const


def _lift(graph: Graph, node: Node) -> bool:
    """Rewrite one 1-D windowed op in place to 2-D between an Unsqueeze and a Squeeze."""
    if node.op_type not in WINDOWED or node.domain not in ("", "ai.onnx") or not _rank3(graph, node.inputs[0]):
        return False
    if node.op_type == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        return False  # Indices are flat positions over the input: left for the support check to reject
    if node.op_type in ("Conv", "ConvTranspose"):
        weight = graph.value(node.inputs[1])
        if weight is None or not weight.is_const or weight.const.ndim != 3:
            return False
        w4 = graph.add_value(Value(f"{weight.name}/2d", weight.dtype, (*weight.shape[:2], 1, weight.shape[2]),
                                   const=weight.const[:, :, None, :], quant=weight.quant))
        node.inputs[1] = w4.name
    for attr, unit in PER_AXIS.items():
        if node.attrs.get(attr) is not None:
            node.attrs[attr] = [unit, *node.attrs[attr]]
    if node.attrs.get("pads") is not None:
        begin, end = node.attrs["pads"]
        node.attrs["pads"] = [0, begin, 0, end]
    node.inputs[0] = _unsqueeze(graph, node.inputs[0], before=node)
    y = graph.values[node.outputs[0]]
    y4 = graph.add_value(Value(f"{y.name}/2d", y.dtype, _with_unit(y.shape), quant=y.quant))
    node.outputs[0] = y4.name
    _insert_after(graph, node, _squeeze_node(graph, y4.name, y.name))
    return True


def _with_unit(shape) -> tuple:
    return (*shape[:2], 1, *shape[2:])


def _axes(graph: Graph, node_name: str) -> tuple[list, dict]:
    """Inputs and attributes that name axis 2, in the form the model's opset expects."""
    if graph.opset >= 13:
        axes = graph.add_value(Value(f"{node_name}/axes", np.dtype(np.int64), (1,), const=np.asarray([2], np.int64)))
        return [axes.name], {}
    return [], {"axes": [2]}


def _squeeze_node(graph: Graph, src: str, dst: str) -> Node:
    extra, attrs = _axes(graph, f"{dst}/squeeze")
    return Node("Squeeze", graph.fresh_name(f"{dst}/squeeze"), [src, *extra], [dst], attrs)


def _unsqueeze(graph: Graph, name: str, before: Node) -> str:
    """`name` with a unit axis 2: the Squeeze's source when `name` is a Squeeze(axis 2) output, else an Unsqueeze
    (one per value, reused)."""
    producer = graph.producers().get(name)
    if producer is not None and _is_axis2(graph, producer, "Squeeze"):
        return producer.inputs[0]
    for node in graph.nodes:
        if node.inputs and node.inputs[0] == name and _is_axis2(graph, node, "Unsqueeze") \
                and graph.nodes.index(node) < graph.nodes.index(before):
            return node.outputs[0]
    value = graph.values[name]
    out = graph.add_value(Value(f"{name}/2d", value.dtype, _with_unit(value.shape), quant=value.quant))
    extra, attrs = _axes(graph, f"{name}/unsqueeze")
    graph.nodes.insert(graph.nodes.index(before),
                       Node("Unsqueeze", graph.fresh_name(f"{name}/unsqueeze"), [name, *extra], [out.name], attrs))
    return out.name


def _is_axis2(graph: Graph, node: Node, op_type: str) -> bool:
    if node.op_type != op_type or node.domain not in ("", "ai.onnx"):
        return False
    if "axes" in node.attrs:
        axes = node.attrs["axes"]
    elif len(node.inputs) > 1 and node.inputs[1] and graph.values[node.inputs[1]].is_const:
        axes = graph.values[node.inputs[1]].const.reshape(-1).tolist()
    else:
        return False
    four = graph.value(node.inputs[0] if op_type == "Squeeze" else node.outputs[0])
    return four is not None and four.shape is not None and four.rank == 4 and [int(a) % 4 for a in axes] == [2]


def _insert_after(graph: Graph, anchor: Node, node: Node) -> None:
    graph.nodes.insert(graph.nodes.index(anchor) + 1, node)


def _sink_one(graph: Graph) -> bool:
    """Move one Squeeze(axis 2) below an elementwise reader, so the reader runs on the 4-D value."""
    producers = graph.producers()
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in UNARY | BINARY:
            continue
        if len([o for o in node.outputs if o]) != 1 or not _rank3(graph, node.outputs[0]):
            continue
        squeezed = [i for i, n in enumerate(node.inputs)
                    if n and n in producers and _is_axis2(graph, producers[n], "Squeeze")]
        if not squeezed or (node.op_type in UNARY and squeezed != [0]):
            continue
        if node.op_type in BINARY and not all(_rank3(graph, n) or _is_scalar(graph, n) for n in node.inputs):
            continue  # broadcasting a lower-rank tensor against [N,C,L] would align differently on [N,C,1,L]
        for i, name in enumerate(node.inputs):
            if name and (i == 0 or node.op_type in BINARY) and _rank3(graph, name):
                node.inputs[i] = _unsqueeze(graph, name, before=node)
        y = graph.values[node.outputs[0]]
        y4 = graph.add_value(Value(f"{y.name}/2d", y.dtype, _with_unit(y.shape), quant=y.quant))
        node.outputs[0] = y4.name
        _insert_after(graph, node, _squeeze_node(graph, y4.name, y.name))
        return True
    return False


def _is_scalar(graph: Graph, name: str) -> bool:
    value = graph.value(name)
    return value is not None and value.is_const and value.const.size == 1


def _cancel_pairs(graph: Graph) -> None:
    """Unsqueeze(Squeeze(x, 2), 2) -> x: readers of the Unsqueeze read x."""
    producers = graph.producers()
    renames = {}
    for node in graph.nodes:
        if not _is_axis2(graph, node, "Unsqueeze") or node.outputs[0] in graph.outputs:
            continue
        first = producers.get(node.inputs[0])
        if first is not None and _is_axis2(graph, first, "Squeeze"):
            renames[node.outputs[0]] = first.inputs[0]
    for node in graph.nodes:
        node.inputs = [renames.get(n, n) for n in node.inputs]

"""ONNX dynamic quantization (onnxruntime's quantize_dynamic) back to dense ops with int8 weights, which lower
to TFLite's hybrid kernels (float activations quantized on the fly, int8 weights):

    xq, xs, xz = DynamicQuantizeLinear(x)
    y = Mul(Cast(MatMulInteger(xq, w_q, xz, w_z), to=float), Mul(xs, w_s))   -> y = MatMul(x, w_q{w_s, w_z})
    (ConvInteger likewise                                                     -> y = Conv(x, w_q{w_s, w_z}, attrs))

The weights are made symmetric per channel by the int8_weights pass when they are not already.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.ir import Graph, Node

INTEGER_OPS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}


def run(graph: Graph, options=None) -> None:
    if not any(n.op_type in INTEGER_OPS for n in graph.nodes):
        return
    graph.quantization["mode"] = "dynamic"
    notes = graph.quantization.setdefault("notes", [])
    producers, consumers = graph.producers(), graph.consumers()
    dead = []
    for node in graph.nodes:
        if node.op_type not in INTEGER_OPS:
            continue
        match = _match(graph, node, producers, consumers)
        if match is None:
            continue
        x, quant, cast, mul, scale_mul = match
        weight = graph.values[node.inputs[1]]
        data = weight.const
        if data.dtype == np.uint8:
            data, quant = qz.shift_uint8(data, quant)
        weight.const, weight.dtype, weight.quant = data, data.dtype, quant
        node.op_type = INTEGER_OPS[node.op_type]
        node.inputs = [x, weight.name]
        node.outputs = [mul.outputs[0]]
        dead += [cast, mul]
        if len(consumers.get(scale_mul.outputs[0], [])) == 1:
            dead.append(scale_mul)
    graph.remove_nodes(dead)
    graph.prune()
    rewritten = sum(1 for n in graph.nodes if n.op_type in ("MatMul", "Conv") and graph.value(n.inputs[1]).quant)
    leftover = sorted({n.op_type for n in graph.nodes if n.op_type in INTEGER_OPS or n.op_type == "DynamicQuantizeLinear"})
    notes.append(f"dynamic quantization: {rewritten} MatMulInteger/ConvInteger pattern(s) became hybrid int8 ops"
                 + (f"; left unmatched: {leftover}" if leftover else ""))


def _const(graph: Graph, name: str):
    value = graph.value(name) if name else None
    return value.const if value is not None and value.is_const else None


def _match(graph: Graph, node: Node, producers: dict, consumers: dict):
    """(float input, weight parameters, Cast, final Mul, scale Mul) of one integer op's pattern, or None."""
    dql = producers.get(node.inputs[0])
    if dql is None or dql.op_type != "DynamicQuantizeLinear":
        return None
    if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] != dql.outputs[2]:
        return None
    weight = _const(graph, node.inputs[1])
    w_zp = _const(graph, node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else np.zeros((), weight.dtype if weight is not None else np.int8)
    if weight is None or w_zp is None:
        return None
    users = consumers.get(node.outputs[0], [])
    cast = users[0] if len(users) == 1 and users[0].op_type == "Cast" else None
    if cast is None or node.outputs[0] in graph.outputs:
        return None
    users = consumers.get(cast.outputs[0], [])
    mul = users[0] if len(users) == 1 and users[0].op_type == "Mul" else None
    if mul is None:
        return None
    other = mul.inputs[1] if mul.inputs[0] == cast.outputs[0] else mul.inputs[0]
    scale_mul = producers.get(other)
    if scale_mul is None or scale_mul.op_type != "Mul" or dql.outputs[1] not in scale_mul.inputs:
        return None
    w_scale = _const(graph, next(i for i in scale_mul.inputs if i != dql.outputs[1]))
    if w_scale is None:
        return None
    axis = 0 if node.op_type == "ConvInteger" else weight.ndim - 1
    return dql.inputs[0], qz.params(w_scale, w_zp, axis), cast, mul, scale_mul

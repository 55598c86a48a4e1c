"""BatchNorm folding: an inference BatchNormalization right after a Conv/ConvTranspose with constant
weights is folded into them.

    BatchNormalization(Conv(x, W, b), s, B, m, v) -> Conv(x, W * k, (b - m) * k + B),  k = s / sqrt(v + eps)

The conv output must have no other reader. BatchNormalization left alone is lowered as MUL + ADD, and the
conversion notes say why it was not folded (passes._declined).
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Value
from edgekit.converters.tflite.passes._declined import decline

#: conv op -> axis of its weight that holds output channels
OUT_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}


def run(graph: Graph, options=None) -> None:
    producers, consumers = graph.producers(), graph.consumers()
    folded = []
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or len([o for o in bn.outputs if o]) != 1:
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op_type not in OUT_CHANNEL_AXIS:
            continue
        params = [graph.value(n) for n in bn.inputs[1:5]]
        weight = graph.value(conv.inputs[1])
        bias = graph.value(conv.inputs[2]) if len(conv.inputs) > 2 else None
        if weight is None or not weight.is_const or not all(p is not None and p.is_const for p in params) \
                or bias is not None and not bias.is_const:
            continue  # the support check refuses run-time weights and parameters before this pass
        reason = ("the conv output has another reader" if graph.sole_consumer(conv.outputs[0], consumers) is not bn
                  else "a grouped ConvTranspose" if conv.op_type == "ConvTranspose" and conv.attrs.get("group", 1) != 1
                  else None)
        if reason:
            decline(graph, f"BatchNormalization folding into {conv.op_type}", f"'{bn.name}'", f"{reason} (MUL + ADD kept)")
            continue
        _fold(graph, conv, weight, params, bn.attrs.get("epsilon", 1e-5))
        graph.values[bn.outputs[0]].shape = graph.values[conv.outputs[0]].shape
        conv.outputs[0] = bn.outputs[0]
        folded.append(bn)
    graph.remove_nodes(folded)
    graph.prune()


def _fold(graph: Graph, conv, weight: Value, params, eps: float) -> None:
    scale, shift, mean, var = (p.const.astype(np.float64) for p in params)
    k = scale / np.sqrt(var + eps)
    axis = OUT_CHANNEL_AXIS[conv.op_type]
    shape = [1] * weight.const.ndim
    shape[axis] = -1
    new_w = (weight.const.astype(np.float64) * k.reshape(shape)).astype(np.float32)
    bias = graph.value(conv.inputs[2]) if len(conv.inputs) > 2 else None
    old_b = bias.const.astype(np.float64) if bias is not None else np.zeros_like(k)
    new_b = ((old_b - mean) * k + shift).astype(np.float32)
    w_val = graph.add_value(Value(f"{conv.name}/folded_weight", np.dtype(np.float32), new_w.shape, const=new_w))
    b_val = graph.add_value(Value(f"{conv.name}/folded_bias", np.dtype(np.float32), new_b.shape, const=new_b))
    conv.inputs[1] = w_val.name
    if len(conv.inputs) > 2:
        conv.inputs[2] = b_val.name
    else:
        conv.inputs.append(b_val.name)

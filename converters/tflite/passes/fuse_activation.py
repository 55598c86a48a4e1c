"""Activation fusion on the TFLite graph: a RELU / RELU6 / RELU_N1_TO_1 / TANH right after an op with a
`fused_activation_function` option (conv, depthwise, transpose conv, fully connected, add, sub, mul, div,
pools, concatenation) is folded into that option.

    RELU(CONV_2D(x, w, b)) -> CONV_2D(x, w, b, fused_activation_function=RELU)

The intermediate tensor must have no other reader and must not be a model output.
"""
from __future__ import annotations

from edgekit.converters.tflite.tfl import FUSABLE, TflGraph

ACTIVATIONS = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def run(graph: TflGraph, options=None) -> None:
    producers, consumers = graph.producers(), graph.consumers()  # once: the rewrite keeps both valid
    outputs, fused = set(graph.outputs), set()
    for act in graph.ops:
        if act.code not in ACTIVATIONS:
            continue
        src = act.inputs[0]
        producer = producers.get(src)
        if producer is None or producer.code not in FUSABLE or producer.options.get("fusedActivationFunction", 0):
            continue
        if len(consumers.get(src, [])) != 1 or src in outputs:
            continue
        if producer.code == "TRANSPOSE_CONV" and act.code != "RELU":
            continue  # older LiteRT kernels only honour RELU on transpose conv
        producer.options["fusedActivationFunction"] = ACTIVATIONS[act.code]
        producer.outputs = [act.outputs[0] if o == src else o for o in producer.outputs]
        producers[act.outputs[0]] = producer
        fused.add(id(act))
    graph.ops = [op for op in graph.ops if id(op) not in fused]
    graph.prune()

"""Activation fusion on the TFLite graph: a RELU / RELU6 / RELU_N1_TO_1 / TANH right after an op with a
`fused_activation_function` option (conv, depthwise, transpose conv, fully connected, add, sub, mul, div,
pools, concatenation) is folded into that option.

    RELU(CONV_2D(x, w, b)) -> CONV_2D(x, w, b, fused_activation_function=RELU)

The intermediate tensor must have no other reader and must not be a model output; an activation left unfused
after a fusable op is reported with the reason (passes._declined).
"""
from __future__ import annotations

from edgekit.converters.tflite.passes._declined import decline
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
        if producer is None or producer.code not in FUSABLE:
            continue
        reason = _why_not(producer, act, src, consumers, outputs)
        if reason:
            decline(graph, f"{act.code} fusion into {producer.code}", f"'{src}'", reason)
            continue
        producer.options["fusedActivationFunction"] = ACTIVATIONS[act.code]
        producer.outputs = [act.outputs[0] if o == src else o for o in producer.outputs]
        producers[act.outputs[0]] = producer
        fused.add(id(act))
    graph.ops = [op for op in graph.ops if id(op) not in fused]
    graph.prune()


def _why_not(producer, act, src: str, consumers: dict, outputs: set) -> str | None:
    if producer.options.get("fusedActivationFunction", 0):
        return "the op already has a fused activation"
    if src in outputs:
        return "its input is a model output"
    if len(consumers.get(src, [])) != 1:
        return f"its input has {len(consumers[src])} readers"
    if producer.code == "TRANSPOSE_CONV" and act.code != "RELU":
        return "LiteRT's TRANSPOSE_CONV kernels honour only a fused RELU"
    return None

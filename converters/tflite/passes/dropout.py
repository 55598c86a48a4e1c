"""Inference-mode Dropout: the data output is the input, the mask output (opset 7+, often present but unread in older
exporters' files) is a constant all-true tensor of the input's shape.

    y, mask = Dropout(x)             -> y = Identity(x);  mask = const ones(shape(x), bool)
    y, mask = Dropout(x, r, false)   -> the same (training_mode constant false: an initializer or a Constant node,
                                        which constant folding has not turned into a value yet: it runs later)

A Dropout in training mode (training_mode true or computed at run time) is left for its lowering to refuse.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Graph


def run(graph: Graph, options=None) -> None:
    producers = graph.producers()
    for node in graph.nodes:
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        if len(node.inputs) > 2 and node.inputs[2] and _training(graph, producers, node.inputs[2]) is not False:
            continue
        x = graph.value(node.inputs[0])
        mask = graph.value(node.outputs[1]) if len(node.outputs) > 1 and node.outputs[1] else None
        if mask is not None:
            if x.shape is None or DYNAMIC in x.shape:
                continue  # the lowering says why a mask of run-time shape cannot be a constant
            mask.const, mask.dtype, mask.shape = np.ones(x.shape, np.bool_), np.dtype(np.bool_), tuple(x.shape)
        node.op_type, node.inputs, node.outputs, node.attrs = "Identity", node.inputs[:1], node.outputs[:1], {}
    graph.prune()


def _training(graph: Graph, producers: dict, name: str) -> bool | None:
    """training_mode's value when it is known at compile time, else None."""
    value = graph.value(name)
    if value is not None and value.is_const:
        return bool(value.const)
    node = producers.get(name)
    if node is not None and node.op_type == "Constant" and "value" in node.attrs:
        return bool(np.asarray(node.attrs["value"]))
    return None

"""Inference-mode Dropout: the data output is the input, the mask output (opset 7+, often present but unread in older
exporters' files) is a constant all-true tensor of the input's shape.

    y, mask = Dropout(x)             -> y = Identity(x);  mask = const ones(shape(x), bool)
    y, mask = Dropout(x, r, false)   -> the same (training_mode constant false)

A Dropout in training mode (training_mode true or computed at run time) is left for its lowering to refuse.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Graph


def run(graph: Graph, options=None) -> None:
    for node in graph.nodes:
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        training = graph.value(node.inputs[2]) if len(node.inputs) > 2 else None
        if training is not None and (not training.is_const or bool(training.const)):
            continue
        x = graph.value(node.inputs[0])
        mask = graph.value(node.outputs[1]) if len(node.outputs) > 1 and node.outputs[1] else None
        if mask is not None:
            if x.shape is None or DYNAMIC in x.shape:
                continue  # the lowering says why a mask of run-time shape cannot be a constant
            mask.const, mask.dtype, mask.shape = np.ones(x.shape, np.bool_), np.dtype(np.bool_), tuple(x.shape)
        node.op_type, node.inputs, node.outputs, node.attrs = "Identity", node.inputs[:1], node.outputs[:1], {}
    graph.prune()

"""Float16 ONNX models (as `edgekit quantize --mode fp16` writes them: float16 initializers, float16 activations,
Cast nodes at the float32 I/O and around blocked ops) compile as float32 compute with float16 weights:

    Cast(x: float32 -> float16) -> Identity(x);  Cast(y: float16 -> float32) -> Identity(y)
    float16 initializer w        -> float32 constant w (stored back as float16 by the fp16_weights pass)
    float16 values               -> float32 values
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto data types


def run(graph: Graph, options=None) -> None:
    if not any(v.dtype == np.float16 for v in graph.values.values()):
        return
    graph.quantization["mode"] = "fp16"
    for value in graph.values.values():
        if value.dtype == np.float16:
            value.dtype = np.dtype(np.float32)
            if value.const is not None:
                value.const = value.const.astype(np.float32)
    casts = 0
    for node in graph.nodes:
        if node.op_type == "Cast" and node.domain in ("", "ai.onnx") and node.attrs.get("to") in (FLOAT, FLOAT16):
            x = graph.value(node.inputs[0])
            if x is not None and x.dtype == np.float32:
                node.op_type, node.attrs = "Identity", {}
                casts += 1
    graph.quantization.setdefault("notes", []).append(
        f"float16 ONNX model: weights kept float16, computed in float32 ({casts} float16/float32 Cast node(s) folded)")

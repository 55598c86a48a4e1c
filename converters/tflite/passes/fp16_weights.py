"""FP16 weights on the TFLite graph: float32 constants are stored as float16 and widened at load time.

    OP(x, w: float32 const)  -> OP(x, DEQUANTIZE(w16: float16 const))     (precision "fp16")

LiteRT evaluates a DEQUANTIZE of a constant once, and XNNPACK folds it into the packed weights, so the
model is half the size and computes in float32.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor

MIN_ELEMENTS = 16  # scalars and tiny vectors stay float32: nothing to save, one op less


def run(graph: TflGraph, options=None) -> None:
    if getattr(options, "precision", None) != "fp16":
        return
    consumers = graph.consumers()
    widen = []
    for name, t in list(graph.tensors.items()):
        if t.data is None or t.dtype != np.float32 or t.data.size < MIN_ELEMENTS or name not in consumers:
            continue
        half = f"{name}/fp16"
        while half in graph.tensors:
            half += "_"
        graph.tensors[half] = TflTensor(half, list(t.shape), np.dtype(np.float16), t.data.astype(np.float16))
        t.data = None
        widen.append(TflOp("DEQUANTIZE", [half], [name], origin=f"{name}/fp16_weights"))
    graph.ops[:0] = widen

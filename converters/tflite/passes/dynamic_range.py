"""Dynamic-range quantization on the TFLite graph: float dense/conv weights become int8 per channel, and the
ops run TFLite's hybrid kernels (activations quantized on the fly, per batch row, asymmetrically).

    FULLY_CONNECTED(x: float, w: float32 const)  -> FULLY_CONNECTED(x, w8{per-channel}, asymmetric_quantize_inputs)
    CONV_2D / DEPTHWISE_CONV_2D(x: float, w)     -> same op with w8 (per output channel: axis 0 / axis 3)

Float weights are quantized only under precision "dynamic" (a float32 model); int8 weights from an ONNX
dynamic-quantized model arrive already quantized from the lowering.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.tfl import TflGraph

#: op -> (weight input, axis of output channels in the TFLite weight)
HYBRID = {"FULLY_CONNECTED": (1, 0), "CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3)}
MIN_ELEMENTS = 1024  # smaller weights stay float32, as TFLite's own converter does


def run(graph: TflGraph, options=None) -> None:
    quantize_float = getattr(options, "precision", None) == "dynamic"
    users = graph.consumers()
    for op in graph.ops:
        if op.code not in HYBRID:
            continue
        index, axis = HYBRID[op.code]
        x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[index]]
        if x.dtype != np.float32 or w.data is None:
            continue
        if w.dtype == np.float32 and quantize_float and w.data.size >= MIN_ELEMENTS:
            if len(users.get(op.inputs[index], [])) > 1:
                w = _own_copy(graph, op, index)
            w.data, w.quant = qz.symmetric_weights(w.data, axis)
            w.dtype = np.dtype(np.int8)
        if w.dtype == np.int8 and op.code == "FULLY_CONNECTED":
            op.options["asymmetricQuantizeInputs"] = True


def _own_copy(graph: TflGraph, op, index: int):
    from edgekit.converters.tflite.tfl import TflTensor
    src = graph.tensors[op.inputs[index]]
    name = f"{src.name}/int8"
    while name in graph.tensors:
        name += "_"
    graph.tensors[name] = TflTensor(name, list(src.shape), src.dtype, src.data.copy())
    op.inputs[index] = name
    return graph.tensors[name]

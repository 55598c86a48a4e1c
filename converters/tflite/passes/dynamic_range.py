"""Dynamic-range quantization on the TFLite graph: float dense/conv weights become int8 per channel, and the
ops run TFLite's hybrid kernels (activations quantized on the fly, per batch row, asymmetrically).

    FULLY_CONNECTED(x: float, w: float32 const)  -> FULLY_CONNECTED(x, w8{per-channel}, asymmetric_quantize_inputs)
    CONV_2D / DEPTHWISE_CONV_2D(x: float, w)     -> same op with w8 (per output channel: axis 0 / axis 3)
    DEPTHWISE_CONV_2D(x: float, w8{one scale})   -> w8{that scale on every channel}  (the kernel is per channel only)

Float weights are quantized only when asked (precision "dynamic" on a float32 model, or the LSTM weights of an
ONNX dynamic-quantized model); int8 weights of MatMulInteger/ConvInteger arrive already quantized from the lowering.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.tfl import TflGraph

#: op -> (weight input, axis of output channels in the TFLite weight)
HYBRID = {"FULLY_CONNECTED": (1, 0), "CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3)}
MIN_ELEMENTS = 1024  # smaller weights stay float32, as TFLite's own converter does


def run(graph: TflGraph, options=None) -> None:
    quantize_float = bool(getattr(options, "quantize_float_weights", False))
    users = graph.consumers()
    for op in graph.ops:
        if op.code not in HYBRID or graph.tensors[op.inputs[0]].dtype != np.float32:
            continue
        name = op.inputs[HYBRID[op.code][0]]
        w = graph.tensors[name]
        if w.data is not None and w.dtype == np.float32 and quantize_float and w.data.size >= MIN_ELEMENTS:
            axes = {_weight_axis(graph, user, name) for user in users.get(name, [])}
            if len(axes) == 1 and None not in axes:  # shared weights (a recurrent step per time step): once
                w.data, w.quant = qz.symmetric_weights(w.data, axes.pop())
                w.dtype = np.dtype(np.int8)
        if w.dtype == np.int8 and op.code == "FULLY_CONNECTED":
            op.options["asymmetricQuantizeInputs"] = True
        if w.dtype == np.int8 and op.code == "DEPTHWISE_CONV_2D" and w.quant and len(w.quant["scale"]) == 1:
            _per_channel(w, HYBRID[op.code][1])


def _per_channel(w, axis: int) -> None:
    """One scale repeated for every output channel: the same real values. LiteRT's hybrid DEPTHWISE_CONV_2D has only
    a per-channel kernel, which reads a scale per channel — a single scale (ONNX Runtime's dynamic ConvInteger weights
    are per tensor) makes it read past the array and return garbage (1e19 on ConvNeXt)."""
    channels = w.shape[axis]
    w.quant = qz.params([w.quant["scale"][0]] * channels, [w.quant["zero_point"][0]] * channels, axis)


def _weight_axis(graph: TflGraph, op, name: str):
    """The output-channel axis if `op` reads `name` as the weight of a hybrid-capable op on float input, else None."""
    if op.code not in HYBRID or graph.tensors[op.inputs[0]].dtype != np.float32:
        return None
    index, axis = HYBRID[op.code]
    return axis if op.inputs[index] == name and op.inputs.count(name) == 1 else None

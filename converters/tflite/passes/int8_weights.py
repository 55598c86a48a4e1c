"""Integer weights the way TFLite's kernels take them: conv/dense weights symmetric int8, per channel on the
output-channel axis; biases int32 at input scale × weight scale (float for hybrid, float-activation kernels).

    Conv(x_q, w_q{zp != 0 or wrong axis}, b)  -> Conv(x_q, w_q'{zp 0, per out channel}, b_i32{s_x * s_w'})
    Conv(x_q, w_q, b_i32{s != s_x * s_w})     -> Conv(x_q, w_q, b_i32 requantized)
    Conv(x_q, w_q)                            -> Conv(x_q, w_q, zeros_i32)
    Gemm(x_float, w_q, b_i32)                 -> Gemm(x_float, w_q, b_float)      (dynamic range)

Every weight requantized at compile time is reported in the conversion notes.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.ir import Graph, Node, Value

DENSE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def output_axis(node: Node, weight: Value) -> int:
    """The axis of the ONNX weight holding output channels."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return weight.rank - 1


def run(graph: Graph, options=None) -> None:
    notes = graph.quantization.setdefault("notes", []) if graph.quantization else None
    for node in graph.nodes:
        if node.op_type not in DENSE_OPS or len(node.inputs) < 2:
            continue
        x, w = graph.value(node.inputs[0]), graph.value(node.inputs[1])
        if x is None or w is None or not w.is_const or (x.quant is None and w.quant is None):
            continue
        if x.quant is not None and w.quant is None and w.const.dtype.kind != "f":
            continue
        axis = output_axis(node, w)
        fixed = _symmetric_weight(graph, node, w, axis)
        if fixed and notes is not None:
            notes.append(f"{node.name} ({node.op_type}): weights requantized to symmetric int8 per channel "
                         f"({fixed}); TFLite's integer kernels need zero point 0 on the output-channel axis")
        if x.quant is not None:
            _int32_bias(graph, node, graph.value(node.inputs[1]), x.quant)
        else:
            _float_bias(graph, node)


def _symmetric_weight(graph: Graph, node: Node, w: Value, axis: int) -> str:
    """Replace node's weight by a symmetric per-channel int8 one if it is not already; → why, or ''."""
    quant = w.quant
    if quant is None:
        reason = "they were float"
    elif any(quant["zero_point"]):
        reason = "they were asymmetric"
    elif len(quant["scale"]) > 1 and quant["axis"] != axis:
        reason = f"they were quantized along axis {quant['axis']}, not the output channels"
    elif w.const.dtype != np.int8:
        reason = f"they were {w.const.dtype}"
    else:
        return ""
    real = w.const if quant is None else qz.dequantize(w.const, quant)
    data, new = qz.symmetric_weights(real, axis)
    _set_input(graph, node, 1, data, new, "weight_s8")
    return reason


def _set_input(graph: Graph, node: Node, index: int, data: np.ndarray, quant: dict | None, tag: str) -> None:
    value = graph.add_value(Value(f"{node.name}/{tag}", data.dtype, tuple(data.shape), const=data, quant=quant))
    while len(node.inputs) <= index:
        node.inputs.append("")
    node.inputs[index] = value.name


def _units(node: Node, w: Value) -> int:
    return int(w.shape[output_axis(node, w)])


def _int32_bias(graph: Graph, node: Node, w: Value, x_quant: dict) -> None:
    if node.op_type == "MatMul":
        return
    units = _units(node, w)
    bias = graph.value(node.inputs[2]) if len(node.inputs) > 2 else None
    if bias is not None and not bias.is_const:
        return  # a computed Gemm C: left to the lowering, which adds it separately
    if node.op_type == "Gemm" and (node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0):
        return  # the lowering rejects it for int8
    if bias is not None and bias.const.size not in (1, units):
        return
    want = qz.params(x_quant["scale"][0] * np.asarray(w.quant["scale"], np.float64), 0, 0)
    if bias is None:
        data, quant = np.zeros(units, np.int32), want
    elif bias.quant is not None and bias.const.dtype == np.int32 and bias.const.size == units \
            and qz.same(_per_channel(bias.quant, units), _per_channel(want, units), rel=1e-4):
        return
    else:
        real = bias.const if bias.quant is None else qz.dequantize(bias.const, bias.quant)
        data, quant = qz.int32_bias(np.broadcast_to(real.reshape(-1), (units,)), x_quant["scale"][0], w.quant)
    _set_input(graph, node, 2, data, quant, "bias_s32")


def _per_channel(quant: dict, units: int) -> dict:
    scale = quant["scale"] * (units if len(quant["scale"]) == 1 else 1)
    return qz.params(scale, quant["zero_point"][:1] * units if len(quant["zero_point"]) == 1 else quant["zero_point"])


def _float_bias(graph: Graph, node: Node) -> None:
    bias = graph.value(node.inputs[2]) if len(node.inputs) > 2 else None
    if bias is not None and bias.is_const and bias.quant is not None:
        _set_input(graph, node, 2, qz.dequantize(bias.const, bias.quant), None, "bias_f32")

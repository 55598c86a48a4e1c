"""Integer dtypes the way LiteRT's kernels take them: run-time int64 becomes int32, and integer arithmetic on types whose
LiteRT kernels assume quantization parameters (or do not exist) runs in a wider type, with ONNX's wrap-around kept.

    x: int64 (computed at run time, graph inputs and outputs too)  -> x: int32     (the conversion notes say so)
    c: int64 constant read next to a run-time int64 value, or by a node whose int64 result is computed at run time
                                                                   -> c: int32     (only when every value fits)
    Add(a: int8, b: int8) -> y: int8      -> Cast(Add(Cast(a, int32), Cast(b, int32)), int8)
    Add(a: uint32, b: uint32) -> y        -> the same through int64 (uint32 values do not fit int32)
    QuantizeLinear(x, s, zp: uint8) -> model output y: int8, zp - 128  -> y: uint8, zp (as ONNX declares it)

Why: most LiteRT kernels take int32 only (DIV, POW, FLOOR_DIV, ABS, ...); ONNX writes shapes, indices, token ids and
attention masks as int64. Inputs and outputs of the compiled model are int32 where ONNX has int64; the runtimes cast
fed int64 arrays after checking that their values fit (edgekit.runtimes, the conformance runner). Values computed
inside the model are not range-checked: int64 arithmetic whose results leave the int32 range wraps.

LiteRT's int8/uint8/int16 ADD, SUB, MUL, DIV and comparisons are quantized kernels: without quantization parameters
ADD and SUB abort the process at allocation and MUL returns zeros. Widening to int32 (uint32: int64, where the
kernel exists) and casting back with LiteRT's CAST (which wraps like C++, as numpy and ONNX do) is exact for every op
listed in WIDENED. uint64 has no LiteRT kernel at all, not even CAST: it is left as is, so the check refuses it.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value

INT32_RANGE = (np.iinfo(np.int32).min, np.iinfo(np.int32).max)
#: dtypes whose LiteRT arithmetic kernels are quantized (or missing): computed in a wider type
NARROW = {"int8", "uint8", "int16", "uint16"}
#: ops computed exactly in the wider type and cast back (comparisons give bool: nothing to cast back)
WIDENED = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Clip", "Neg", "Abs", "Mod", "Sign", "CumSum",
           "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin",
           "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}
#: of those, ops with int64 LiteRT kernels (uint32 is widened to int64 only for them)
INT64_KERNELS = {"Add", "Sub", "Mul", "Sum", "Max", "Min", "Clip", "Neg", "Equal", "Less", "Greater", "LessOrEqual",
                 "GreaterOrEqual", "CumSum", "ReduceSum", "ReduceMax", "ReduceMin", "ArgMax", "ArgMin"}
#: ONNX TensorProto data types of the dtypes this pass casts to
ONNX_TYPE = {"int32": 6, "int64": 7, "int8": 3, "uint8": 2, "int16": 5, "uint16": 4, "uint32": 12}


def run(graph: Graph, options=None) -> None:
    _uint8_outputs(graph)
    _narrow_int64(graph)
    _widen_narrow_arithmetic(graph)


def fits_int32(array: np.ndarray) -> bool:
    return array.size == 0 or (int(array.min()) >= INT32_RANGE[0] and int(array.max()) <= INT32_RANGE[1])


def _uint8_outputs(graph: Graph) -> None:
    """A model output quantized to uint8 stays uint8 (the QDQ pass keeps uint8 values as int8, zero point - 128)."""
    producers = graph.producers()
    for name in graph.outputs:
        node, value = producers.get(name), graph.values[name]
        if node is None or node.op_type != "QuantizeLinear" or value.dtype != np.int8 or value.quant is None:
            continue
        zero_point = graph.value(node.inputs[2]) if len(node.inputs) > 2 else None
        if zero_point is not None and zero_point.is_const and zero_point.const.dtype == np.uint8:
            value.dtype = np.dtype(np.uint8)
            value.quant = dict(value.quant, zero_point=[int(z) + 128 for z in value.quant["zero_point"]])


def _narrow_int64(graph: Graph) -> None:
    runtime = {n for n, v in graph.values.items() if v.dtype == np.int64 and not v.is_const}
    if not runtime:
        return
    for node in graph.nodes:  # constants meeting a run-time int64 operand, or making a run-time int64 result, follow
        if not any(i in runtime for i in node.inputs) and not any(o in runtime for o in node.outputs):
            continue
        for name in node.inputs:
            value = graph.value(name)
            if value is not None and value.is_const and value.dtype == np.int64 and fits_int32(value.const):
                value.const, value.dtype = value.const.astype(np.int32), np.dtype(np.int32)
    for name in runtime:
        graph.values[name].dtype = np.dtype(np.int32)
    io = [n for n in graph.inputs + graph.outputs if n in runtime]
    if io:
        graph.quantization.setdefault("notes", []).append(
            f"int64 inputs/outputs {io} are int32 in the TFLite model (LiteRT's kernels take int32); int64 data fed "
            f"to it must fit int32 (edgekit's runtimes check and cast it)")
        graph.quantization.setdefault("int64_as_int32", []).extend(io)


def _widen_narrow_arithmetic(graph: Graph) -> None:
    nodes = []
    for node in graph.nodes:
        wide = _wide_dtype(node, graph)
        if wide is None:
            nodes.append(node)
            continue
        before, after = [], []
        node.inputs = [_widened_input(graph, name, wide, node, before) for name in node.inputs]
        node.outputs = [_widened_output(graph, name, wide, node, after) for name in node.outputs]
        nodes.extend(before + [node] + after)
    graph.nodes = nodes


def _wide_dtype(node: Node, graph: Graph) -> str | None:
    if node.op_type not in WIDENED or node.domain not in ("", "ai.onnx"):
        return None
    kinds = {v.dtype.name for v in (graph.value(n) for n in node.inputs) if v is not None and v.quant is None
             and not v.is_const}
    if "uint32" in kinds:
        return "int64" if node.op_type in INT64_KERNELS else None
    return "int32" if kinds & NARROW else None


def _widened_input(graph: Graph, name: str, wide: str, node: Node, before: list) -> str:
    value = graph.value(name)
    if value is None or value.dtype.kind not in "iu" or value.dtype.name == wide or value.quant is not None:
        return name
    if value.is_const:
        const = value.const.astype(wide)
        return graph.add_value(Value(f"{name}_{wide}", np.dtype(wide), tuple(const.shape), const=const)).name
    cast = graph.add_value(Value(f"{name}_{wide}", np.dtype(wide), value.shape))
    before.append(Node("Cast", graph.fresh_name(f"{node.name}/{name}_to_{wide}"), [name], [cast.name],
                       {"to": ONNX_TYPE[wide]}, module=node.module))
    return cast.name


def _widened_output(graph: Graph, name: str, wide: str, node: Node, after: list) -> str:
    value = graph.value(name)
    if value is None or value.dtype.kind not in "iu" or value.dtype.name == wide:
        return name
    computed = graph.add_value(Value(f"{name}_{wide}", np.dtype(wide), value.shape))
    after.append(Node("Cast", graph.fresh_name(f"{node.name}/to_{value.dtype.name}"), [computed.name], [name],
                      {"to": ONNX_TYPE[value.dtype.name]}, module=node.module))
    return computed.name

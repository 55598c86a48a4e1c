"""Requantization where TFLite's integer kernels constrain parameters, on the TFLite graph:

    y{s, z} = LOGISTIC(x)      -> t{1/256, -128} = LOGISTIC(x); y = QUANTIZE(t)   (also SOFTMAX; TANH: 1/128, 0)
    y{s, z} = RESHAPE(x{s', z'}) -> t{s', z'} = RESHAPE(x); y = QUANTIZE(t)          (one data input, SAME_SCALE)
    y{s, z} = CONCATENATION(a{s1, z1}, b) -> a' = QUANTIZE(a){s, z}; y = CONCATENATION(a', b)   (several inputs)
    y{s, z} = ADD(x, c{s', z'})  -> y = ADD(x, c'{s, z})   c constant, when c' holds c's values exactly (zeros always)

so each kernel sees the parameters it assumes and the values keep the scale the quantizer chose.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor


def run(graph: TflGraph, options=None) -> None:
    for op in list(graph.ops):
        if op.code in qz.FIXED_OUTPUT:
            _fixed_output(graph, op)
        elif op.code in qz.SAME_SCALE:
            _same_scale(graph, op)
        elif op.code in ("ADD", "SUB"):
            _exact_constant_operand(graph, op)


def _int8(graph: TflGraph, name) -> bool:
    t = graph.tensors.get(name) if name else None
    return t is not None and t.dtype == np.int8 and t.quant is not None


def _fresh(graph: TflGraph, base: str) -> str:
    name, i = base, 1
    while name in graph.tensors:
        name, i = f"{base}_{i}", i + 1
    return name


def _fixed_output(graph: TflGraph, op: TflOp) -> None:
    out = op.outputs[0]
    if not _int8(graph, out):
        return
    scale, zp = qz.FIXED_OUTPUT[op.code]
    want = qz.params(scale, zp)
    if qz.same(graph.tensors[out].quant, want):
        return
    t = graph.tensors[out]
    fixed = _fresh(graph, f"{out}/{op.code.lower()}_fixed")
    graph.tensors[fixed] = TflTensor(fixed, list(t.shape), t.dtype, quant=want)
    op.outputs[0] = fixed
    graph.ops.insert(graph.ops.index(op) + 1, TflOp("QUANTIZE", [fixed], [out], origin=f"{op.origin}/requantize"))


def _same_scale(graph: TflGraph, op: TflOp) -> None:
    picks = qz.DATA_INPUTS.get(op.code, (0,))
    data = [i for i in (range(len(op.inputs)) if picks is None else picks) if i < len(op.inputs)]
    if len(data) == 1:
        _requantize_outputs(graph, op, op.inputs[data[0]])
    else:
        _requantize_inputs(graph, op, data)


def _requantize_outputs(graph: TflGraph, op: TflOp, source: str) -> None:
    """One data input: the op works in its input's parameters, each output is requantized after it (the output
    range is within the input's, so nothing is clipped that the output could hold)."""
    if not _int8(graph, source):
        return
    have = graph.tensors[source].quant
    for k, out in enumerate(op.outputs):
        if not _int8(graph, out) or qz.same(graph.tensors[out].quant, have):
            continue
        t = graph.tensors[out]
        inner = _fresh(graph, f"{out}/{op.code.lower()}_in_scale")
        graph.tensors[inner] = TflTensor(inner, list(t.shape), t.dtype, quant=dict(have))
        op.outputs[k] = inner
        graph.ops.insert(graph.ops.index(op) + 1, TflOp("QUANTIZE", [inner], [out], origin=f"{op.origin}/requantize"))


def _requantize_inputs(graph: TflGraph, op: TflOp, indices) -> None:
    """Several data inputs (CONCATENATION, MAXIMUM, MINIMUM): each is requantized to the output's parameters."""
    if not _int8(graph, op.outputs[0]):
        return
    want = graph.tensors[op.outputs[0]].quant
    for i in indices:
        name = op.inputs[i]
        if not _int8(graph, name) or qz.same(graph.tensors[name].quant, want):
            continue
        src = graph.tensors[name]
        renamed = _fresh(graph, f"{name}/requantized")
        if src.data is not None:
            data = qz.quantize(qz.dequantize(src.data, src.quant), want)
            graph.tensors[renamed] = TflTensor(renamed, list(src.shape), src.dtype, data, dict(want))
        else:
            graph.tensors[renamed] = TflTensor(renamed, list(src.shape), src.dtype, quant=dict(want))
            graph.ops.insert(graph.ops.index(op), TflOp("QUANTIZE", [name], [renamed], origin=f"{op.origin}/requantize"))
        op.inputs[i] = renamed


def _exact_constant_operand(graph: TflGraph, op: TflOp) -> None:
    """LiteRT's int8 ADD/SUB rescales its operands by 2·max(input scale) / (2^20·output scale), which must stay below
    1 or the kernel aborts: a fresh model's zero bias, quantized at scale 1, beside a matrix product of scale 1e-7
    breaks it (MobileViT). A constant operand is moved to the output's parameters when they hold its values exactly
    — real zeros always — so the sum is unchanged and the multiplier is that of the other operand alone."""
    out = op.outputs[0]
    if not _int8(graph, out) or not qz.per_tensor(graph.tensors[out].quant):
        return
    want = graph.tensors[out].quant
    for i, name in enumerate(op.inputs[:2]):
        c = graph.tensors.get(name) if name else None
        if c is None or c.data is None or not _int8(graph, name) or qz.same(c.quant, want):
            continue
        moved = qz.moved_exactly(c.data, c.quant, want)
        if moved is None:
            continue
        renamed = _fresh(graph, f"{name}/at_output_scale")
        graph.tensors[renamed] = TflTensor(renamed, list(c.shape), c.dtype, moved, dict(want))
        op.inputs[i] = renamed

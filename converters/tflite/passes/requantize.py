"""Requantization where TFLite's integer kernels constrain parameters, on the TFLite graph:

    y{s, z} = LOGISTIC(x)      -> t{1/256, -128} = LOGISTIC(x); y = QUANTIZE(t)   (also SOFTMAX; TANH: 1/128, 0)
    y{s, z} = RESHAPE(x{s', z'}) -> x' = QUANTIZE(x){s, z}; y = RESHAPE(x')        (every op in SAME_SCALE)

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
    outs = [o for o in op.outputs if _int8(graph, o)]
    if not outs:
        return
    want = graph.tensors[outs[0]].quant
    for o in outs[1:]:  # SPLIT: every output must match the input, so they all take the first's parameters
        if not qz.same(graph.tensors[o].quant, want):
            graph.tensors[o].quant = dict(want)
    picks = qz.DATA_INPUTS.get(op.code, (0,))
    indices = range(len(op.inputs)) if picks is None else picks
    for i in indices:
        name = op.inputs[i] if i < len(op.inputs) else None
        if not _int8(graph, name) or qz.same(graph.tensors[name].quant, want):
            continue
        src = graph.tensors[name]
        if src.data is not None:
            renamed = _fresh(graph, f"{name}/requantized")
            data = qz.quantize(qz.dequantize(src.data, src.quant), want)
            graph.tensors[renamed] = TflTensor(renamed, list(src.shape), src.dtype, data, dict(want))
        else:
            renamed = _fresh(graph, f"{name}/requantized")
            graph.tensors[renamed] = TflTensor(renamed, list(src.shape), src.dtype, quant=dict(want))
            graph.ops.insert(graph.ops.index(op), TflOp("QUANTIZE", [name], [renamed], origin=f"{op.origin}/requantize"))
        op.inputs[i] = renamed

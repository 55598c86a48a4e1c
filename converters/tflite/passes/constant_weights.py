"""Weights computed from constants become constants before the quantization passes look for them:

    w = Mul(g, Div(v, ReduceL2(v)))          (weight normalisation, wav2vec2's positional convolution)
    DequantizeLinear(QuantizeLinear(w))      -> DequantizeLinear(const int8)   the static pattern passes.qdq reads
    DynamicQuantizeLinear(w)                 -> const uint8, scale, zero point  what passes.dynamic_quant matches

This is constant folding with DequantizeLinear kept: folded, a weight's DequantizeLinear would leave a float
constant and the model would lose its int8 weights. Everything else folds again after the quantization passes.
"""
from __future__ import annotations

from edgekit.converters.tflite.ir import Graph
from edgekit.converters.tflite.passes import constant_folding

KEEP = frozenset({"DequantizeLinear"})


def run(graph: Graph, options=None) -> None:
    if any(n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") for n in graph.nodes):
        constant_folding.run(graph, options, keep=KEEP)

"""Graph rewrites, one per module, in the order the compiler runs them.

IR passes run on the ONNX-level graph before lowering; TFLite passes run on the emitted op list.
Each module's docstring states its rewrite; each exposes `run(graph)`.
"""
from __future__ import annotations

from edgekit.converters.tflite.passes import (adaptive_pool, cancel_transposes, channel_shuffle, constant_folding,
                                              conv1d, dense_layout, dropout, fold_batchnorm, matmul_adjoint,
                                              fuse_activation, gelu, layernorm, layout)
from edgekit.converters.tflite.passes import (constant_weights, dynamic_quant, dynamic_range, float_islands,
                                              fp16_model, fp16_weights, int8_weights, integer_dtypes, qdq, requantize)

#: before the support check: make static facts constant and fuse decomposed ops, so checks see the result
FOLDING = (fp16_model, constant_weights, dynamic_quant, qdq, dropout, constant_folding, layernorm, gelu,
           channel_shuffle, adaptive_pool, conv1d, matmul_adjoint, integer_dtypes)
#: after the check, on the IR
IR_PASSES = (float_islands, fold_batchnorm, int8_weights, layout, dense_layout)
#: after lowering, on the TFLite graph
TFLITE_PASSES = (cancel_transposes, fuse_activation, requantize, dynamic_range, fp16_weights)
#: TFLite passes that also run on every further subgraph (a WHILE's body holds weights of its own): weight storage only
SUBGRAPH_PASSES = (dynamic_range, fp16_weights)

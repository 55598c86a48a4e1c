"""Constant folding: a node whose inputs are all constant becomes a constant, computed by ONNX's reference
evaluator; `Shape`/`Size` of a statically shaped value become constants too.

    Add(const a, const b) -> const (a + b);  Shape(x: static [1,3,8,8]) -> const [1,3,8,8]
    Shape<start=2>(x: [B, T, 64]) -> const [64]   (only the dims it reads need be static)

A Shape reading a run-time dim stays: lowerings/shape.py computes it in the model (SHAPE), and the arithmetic on it
(Gather, Concat, Mul, ...) stays too, since its inputs are not all constant.

After passes.qdq a quantized value is int8 with a scale and zero point standing for real numbers: a node reading
such constants folds on the real values and quantizes its result to its output's parameters, as ONNX Runtime runs
DequantizeLinear → op → QuantizeLinear (a weight-normalised convolution's weight, computed from quantized constants).

A node left in place whose output shape is still unknown is shape-inferred again with its now-constant
inputs (a Reshape whose target came from Shape/Gather/Concat arithmetic gets a static shape).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.importer import STRIPPED_ELEMENTS
from edgekit.converters.tflite.ir import DYNAMIC, Graph, Node

QUANTIZATION_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}  # read integers as integers
NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
MAX_FOLDED_ELEMENTS = 1 << 26  # don't materialise absurdly large constants (e.g. an Expand to a huge size)


def run(graph: Graph, options=None, keep: frozenset = frozenset()) -> None:
    """Fold every foldable node but those whose op type is in `keep` (passes.constant_weights keeps Q/DQ patterns)."""
    folded = []
    for node in graph.nodes:
        results = None if node.op_type in keep else _fold(node, graph)
        if results is None:
            _refine_shapes(node, graph)
            continue
        for name, arr in zip(node.outputs, results):
            if name:
                value = graph.values[name]
                if value.quant is not None and value.dtype == np.int8 and arr.dtype == np.uint8:
                    arr = (arr.astype(np.int16) - 128).astype(np.int8)  # passes.qdq typed it int8, zero point -128
                elif value.quant is not None and np.dtype(value.dtype).kind in "iu" and arr.dtype.kind == "f":
                    arr = qz.quantize(arr, value.quant, value.dtype)  # folded on real values (_real)
                value.const, value.dtype, value.shape = arr, arr.dtype, tuple(arr.shape)
        folded.append(node)
    graph.remove_nodes(folded)
    graph.prune()


def _fold(node: Node, graph: Graph):
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD:
        return None
    if node.op_type == "Constant":
        value = _constant(node.attrs)
        return None if value is None else [value]
    if node.op_type in ("Shape", "Size"):
        return _static_shape(node, graph)
    inputs = [graph.value(n) for n in node.inputs]
    if not all(v is None or v.is_const for v in inputs):
        return None
    if any(v is not None and v.const.size > MAX_FOLDED_ELEMENTS for v in inputs):
        return None
    if node.op_type not in QUANTIZATION_OPS:
        inputs = [_real(v) for v in inputs]
    return _evaluate(node, inputs, graph.opset)


def _real(value):
    """A quantized integer constant as the real numbers it stands for; any other value as it is."""
    if value is None or value.quant is None or value.const.dtype.kind not in "iu":
        return value
    return dataclasses.replace(value, const=qz.dequantize(value.const, value.quant), dtype=np.dtype(np.float32),
                               quant=None)


def _refine_shapes(node: Node, graph: Graph) -> None:
    """Re-run ONNX shape inference on one node whose outputs are unknown or have run-time non-batch dims."""
    outputs = [graph.value(o) for o in node.outputs if o]
    if all(v is not None and v.shape is not None and DYNAMIC not in v.shape[1:] for v in outputs):
        return
    inputs = [graph.value(n) for n in node.inputs if n]
    if node.domain not in ("", "ai.onnx") or any(v is None or v.shape is None for v in inputs):
        return
    import onnx
    from onnx import helper
    types = {v.name: helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(v.dtype),
                                                   [None if d == DYNAMIC else d for d in v.shape]) for v in inputs}
    # inference reads the values of shape-like inputs only; a weight's values would be a copy of it per node
    data = {v.name: onnx.numpy_helper.from_array(v.const, v.name) for v in inputs
            if v.is_const and v.const.size <= STRIPPED_ELEMENTS}
    attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in node.attrs.items()}
    try:
        schema = onnx.defs.get_schema(node.op_type, graph.opset, node.domain)
        inferred = onnx.shape_inference.infer_node_outputs(
            schema, helper.make_node(node.op_type, node.inputs, node.outputs, **attrs), types, data,
            opset_imports=[helper.make_opsetid("", graph.opset)])
    except Exception:  # inference is best effort here; the support check reports what stays unknown
        return
    for name, proto in inferred.items():
        tt, value = proto.tensor_type, graph.values.get(name)
        if value is None or not tt.HasField("shape"):
            continue
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") else DYNAMIC for d in tt.shape.dim)
        if value.shape is None or shape.count(DYNAMIC) < value.shape.count(DYNAMIC):
            value.shape = shape


def _constant(attrs: dict) -> np.ndarray:
    kinds = {"value": None, "value_float": np.float32, "value_floats": np.float32,
             "value_int": np.int64, "value_ints": np.int64}
    for key, dtype in kinds.items():
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    return None


def _static_shape(node: Node, graph: Graph):
    x = graph.value(node.inputs[0])
    if x is None or x.shape is None:
        return None
    if node.op_type == "Size":
        return None if DYNAMIC in x.shape else [np.asarray(int(np.prod(x.shape)), dtype=np.int64)]
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    dims = x.shape[start:end]
    return None if DYNAMIC in dims else [np.asarray(dims, dtype=np.int64)]


def _evaluate(node: Node, inputs, opset: int):
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    feeds = {v.name: v.const for v in inputs if v is not None}
    proto_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in feeds.items()]
    proto_outputs = [helper.make_empty_tensor_value_info(o) for o in node.outputs if o]
    attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in node.attrs.items()}
    proto_node = helper.make_node(node.op_type, node.inputs, node.outputs, **attrs)
    model = helper.make_model(helper.make_graph([proto_node], "fold", proto_inputs, proto_outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # an op the reference evaluator lacks: leave it to its lowering
        return None
    if any(np.asarray(r).size > MAX_FOLDED_ELEMENTS for r in results):
        return None
    out = iter(np.asarray(r) for r in results)
    return [next(out) if o else None for o in node.outputs]

"""passes/constant_weights.py (with constant_folding on quantized constants): a weight computed from constants — weight
normalisation, w = g · v / ‖v‖, as wav2vec2's positional convolution is exported — becomes a constant before the
quantization passes look for it, so ONNX Runtime's dynamic model (DynamicQuantizeLinear on that weight) compiles to a
hybrid convolution and its static QDQ model (the weight's intermediate values quantized as activations) to an int8
one. Before, both were refused: the 1-D convolution's weight was not constant when the passes ran."""
from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import onnx

from _pass_case import as_model, assert_converts, model_text
from _qdq import ort_qdq, steps_off
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(5)
WEIGHT_NORM = model_text(
    "n = ReduceL2 <keepdims=1> (v, axes)\n d = Div(v, n)\n w = Mul(d, g)\n c = Conv <pads=[2,2]> (x, w)\n y = Relu(c)",
    "float[1,16,40] x", "float y", 18, v=R.standard_normal((32, 16, 5)).astype(np.float32),
    g=R.uniform(0.5, 2.0, (32, 1, 1)).astype(np.float32),
    axes=np.array([1, 2], np.int64))


def ort_dynamic(model: onnx.ModelProto, tmp_path) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, dst = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(model, str(src))
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    finally:
        logging.getLogger().setLevel(level)
    return onnx.load(str(dst))


def test_a_dynamic_quantized_weight_normalised_conv1d_is_a_hybrid_conv(tmp_path):
    model = ort_dynamic(as_model(WEIGHT_NORM), tmp_path)
    assert any(n.op_type == "DynamicQuantizeLinear" and n.input[0] == "w" for n in model.graph.node)
    compiled = assert_converts(model, atol=5e-2, rtol=5e-2)
    g = compiled.graph
    assert [op.code for op in g.ops].count("CONV_2D") == 1
    conv = next(op for op in g.ops if op.code == "CONV_2D")
    assert g.tensors[conv.inputs[0]].dtype == np.float32 and g.tensors[conv.inputs[1]].dtype == np.int8


def test_a_static_qdq_weight_normalised_conv1d_is_an_int8_conv(tmp_path):
    model = ort_qdq(as_model(WEIGHT_NORM), tmp_path)
    assert any(n.op_type == "QuantizeLinear" and n.input[0] in ("d", "w") for n in model.graph.node)
    compiled = compile_onnx(model)
    g = compiled.graph
    assert "CONV_2D" in [op.code for op in g.ops]
    conv = next(op for op in g.ops if op.code == "CONV_2D")
    assert g.tensors[conv.inputs[0]].dtype == np.int8 and g.tensors[conv.inputs[1]].dtype == np.int8
    assert max(steps_off(model, compiled).values()) <= 4  # convert's INT8 gate

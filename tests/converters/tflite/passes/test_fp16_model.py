"""passes/fp16_model.py: a float16 ONNX model (float16 weights, Casts at its float32 I/O) compiles as float32 compute
with float16 weights: its Casts fold away, its float16 initializers are stored float16 behind one DEQUANTIZE each."""
from __future__ import annotations

import numpy as np

from _pass_case import assert_converts, model_text

R = np.random.default_rng(6)
HALF = model_text("h = Cast <to=10> (x)\n m = MatMul(h, w)\n y = Cast <to=1> (m)", "float[2,32] x", "float y",
                  w=R.standard_normal((32, 8)).astype(np.float16))


def test_a_float16_model_folds_its_casts_and_keeps_its_weights_float16():
    compiled = assert_converts(HALF, atol=1e-2, rtol=1e-2)  # ORT computes in float16, LiteRT in float32
    assert [op.code for op in compiled.graph.ops] == ["DEQUANTIZE", "FULLY_CONNECTED"]
    assert compiled.quantization["mode"] == "fp16"
    assert compiled.quantization["notes"] == [
        "float16 ONNX model: weights kept float16, computed in float32 (2 float16/float32 Cast node(s) folded)"]
    weight = compiled.graph.tensors[compiled.graph.ops[0].inputs[0]]
    assert weight.dtype == np.float16 and weight.data.shape == (8, 32)


def test_a_float32_model_is_not_touched():
    text = model_text("y = MatMul(x, w)", "float[2,32] x", "float y", w=R.standard_normal((32, 8)).astype(np.float32))
    compiled = assert_converts(text)
    assert [op.code for op in compiled.graph.ops] == ["FULLY_CONNECTED"]
    assert compiled.quantization == {"mode": "float32", "notes": []}

"""passes/dynamic_range.py: under precision "dynamic", float dense/conv weights of 1024 elements or more become int8 per
output channel and the ops run LiteRT's hybrid kernels (activations quantized on the fly); smaller ones stay float."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import assert_converts, model_text

R = np.random.default_rng(12)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("body, x, w, ops, axis", [
    ("y = MatMul(x, w)", "float[2,64] x", f32(64, 32), ["FULLY_CONNECTED"], 0),
    ("y = Conv (x, w)", "float[1,32,4,4] x", f32(32, 32, 1, 1), ["TRANSPOSE", "CONV_2D", "TRANSPOSE"], 0),
])
def test_float_weights_become_int8_per_output_channel(body, x, w, ops, axis):
    text = model_text(body, x, "float y", w=w)
    compiled = assert_converts(text, precision="dynamic", atol=2e-2, rtol=2e-2)  # activations quantized per row
    g = compiled.graph
    assert [op.code for op in g.ops] == ops and compiled.quantization["mode"] == "dynamic"
    layer = next(op for op in g.ops if op.code != "TRANSPOSE")
    weight = g.tensors[layer.inputs[1]]
    assert weight.dtype == np.int8 and len(weight.quant["scale"]) == weight.data.shape[axis]


def test_small_weights_and_weights_without_dynamic_precision_stay_float():
    big = model_text("y = MatMul(x, w)", "float[2,64] x", "float y", w=f32(64, 32))
    small = model_text("y = MatMul(x, w)", "float[2,32] x", "float y", w=f32(32, 8))
    for text, precision in [(big, "auto"), (small, "dynamic")]:
        g = assert_converts(text, precision=precision).graph
        assert [op.code for op in g.ops] == ["FULLY_CONNECTED"] and g.tensors[g.ops[0].inputs[1]].dtype == np.float32

"""passes/int8_weights.py: conv/dense weights become symmetric int8 per output channel with an int32 bias at input
scale x weight scale; asymmetric weights are requantized and the conversion notes say so."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import as_model, model_text
from _qdq import steps_off
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(11)
S, Z = (lambda v: np.array(v, np.float32)), (lambda v: np.array(v, np.int8))
CONV = ("qx = QuantizeLinear(x, sx, zx)\n dx = DequantizeLinear(qx, sx, zx)\n dw = DequantizeLinear(w, sw, zw)\n"
        " t = Conv <pads=[1,1,1,1]> (dx, dw)\n q = QuantizeLinear(t, so, zo)\n y = DequantizeLinear(q, so, zo)")
W = R.integers(-100, 100, (2, 3, 3, 3)).astype(np.int8)


def compiled_conv(zw: int):
    model = as_model(model_text(CONV, "float[1,3,4,4] x", "float y", sx=S(0.03), zx=Z(0), w=W, sw=S(0.01), zw=Z(zw),
                                so=S(0.05), zo=Z(0)))
    compiled = compile_onnx(model)
    assert max(steps_off(model, compiled).values()) <= 1.01
    conv = next(op for op in compiled.graph.ops if op.code == "CONV_2D")
    weight, bias = (compiled.graph.tensors[n] for n in conv.inputs[1:3])
    return compiled, weight, bias


@pytest.mark.parametrize("zw, channels", [(0, 1), (3, 2)])
def test_conv_weights_are_symmetric_int8_with_an_int32_bias_at_input_times_weight_scale(zw, channels):
    _, weight, bias = compiled_conv(zw)
    assert weight.dtype == np.int8 and weight.quant["zero_point"] == [0] * channels
    assert len(weight.quant["scale"]) == channels  # asymmetric ones become per output channel
    assert bias.dtype == np.int32 and bias.data.tolist() == [0, 0]  # no bias in ONNX: zeros at s_x * s_w
    np.testing.assert_allclose(bias.quant["scale"], np.float32(0.03) * np.asarray(weight.quant["scale"]), rtol=1e-6)


def test_symmetric_per_tensor_weights_are_kept_and_not_reported():
    compiled, weight, _ = compiled_conv(0)
    assert np.array_equal(weight.data, W.transpose(0, 2, 3, 1)) and compiled.quantization["notes"] == []


def test_asymmetric_weights_are_requantized_and_the_notes_say_so():
    compiled, _, _ = compiled_conv(3)
    assert compiled.quantization["notes"] == [
        "Conv_3 (Conv): weights requantized to symmetric int8 per channel (they were asymmetric); TFLite's integer "
        "kernels need zero point 0 on the output-channel axis"]

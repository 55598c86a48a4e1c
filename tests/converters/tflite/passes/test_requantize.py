"""passes/requantize.py: where a TFLite integer kernel fixes or shares quantization parameters, a QUANTIZE restores the
scale the quantizer chose: LOGISTIC/TANH outputs at 1/256 (1/128), RESHAPE at its input's, CONCATENATION inputs at the
output's; parameters that already agree get none. ONNX Runtime's QDQ result and LiteRT's differ by at most one step."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import as_model, model_text
from _qdq import steps_off
from edgekit.converters.tflite import compile_onnx

Q_X = "qx = QuantizeLinear(x, sx, zx)\n dx = DequantizeLinear(qx, sx, zx)\n"
Q_OUT = "\n q = QuantizeLinear(t, so, zo)\n y = DequantizeLinear(q, so, zo)"


def qdq(body: str, inputs: str = "float[2,8] x", **params):
    """An int8 QDQ model: x quantized at (0.03, 0), `body` computing t, t quantized at (so, zo)."""
    params = {"sx": 0.03, "zx": 0, **params}
    inits = {k: np.array(v, np.float32 if k.startswith("s") else np.int8) for k, v in params.items() if k != "shape"}
    if "shape" in params:
        inits["shape"] = np.array(params["shape"], np.int64)
    return as_model(model_text(Q_X + body + Q_OUT, inputs, "float y", **inits))


def compiled_int8(model):
    """The compiled op list and the TFLite output scale of each op, after checking LiteRT against ORT in steps."""
    compiled = compile_onnx(model)
    assert max(steps_off(model, compiled).values()) <= 1.01  # one step: rounding twice
    g = compiled.graph
    return [(op.code, (g.tensors[op.outputs[0]].quant or {}).get("scale", [None])[0]) for op in g.ops]


@pytest.mark.parametrize("onnx_op, tfl_op, fixed, chosen, zo", [("Sigmoid", "LOGISTIC", 1 / 256, 1 / 255, -128),
                                                                  ("Tanh", "TANH", 1 / 128, 2 / 255, 0)])
def test_a_fixed_output_kernel_gets_its_scale_and_a_quantize_back_to_the_chosen_one(onnx_op, tfl_op, fixed, chosen, zo):
    ops = compiled_int8(qdq(f" t = {onnx_op}(dx)", so=chosen, zo=zo))
    assert [code for code, _ in ops] == ["QUANTIZE", tfl_op, "QUANTIZE", "DEQUANTIZE"]
    assert ops[1][1] == pytest.approx(fixed) and ops[2][1] == pytest.approx(chosen)


def test_a_logistic_already_at_1_256_needs_no_quantize():
    ops = compiled_int8(qdq(" t = Sigmoid(dx)", so=1 / 256, zo=-128))
    assert [code for code, _ in ops] == ["QUANTIZE", "LOGISTIC", "DEQUANTIZE"]


def test_a_reshape_keeps_its_input_scale_and_requantizes_after():
    ops = compiled_int8(qdq(" t = Reshape(dx, shape)", so=0.05, zo=3, shape=[4, 4]))
    assert ops == [("QUANTIZE", pytest.approx(0.03)), ("RESHAPE", pytest.approx(0.03)),
                   ("QUANTIZE", pytest.approx(0.05)), ("DEQUANTIZE", None)]


def test_a_reshape_at_its_input_scale_needs_no_quantize():
    ops = compiled_int8(qdq(" t = Reshape(dx, shape)", so=0.03, zo=0, shape=[4, 4]))
    assert [code for code, _ in ops] == ["QUANTIZE", "RESHAPE", "DEQUANTIZE"]


CONCAT = " qz = QuantizeLinear(z, sz, zz)\n dz = DequantizeLinear(qz, sz, zz)\n t = Concat <axis=1> (dx, dz)"


def test_concatenation_inputs_at_another_scale_are_requantized_to_the_output_scale():
    ops = compiled_int8(qdq(CONCAT, "float[2,8] x, float[2,8] z", sz=0.02, zz=5, so=0.03, zo=0))
    assert ops == [("QUANTIZE", pytest.approx(0.03)), ("QUANTIZE", pytest.approx(0.02)), ("QUANTIZE", pytest.approx(0.03)),
                   ("CONCATENATION", pytest.approx(0.03)), ("DEQUANTIZE", None)]


def test_concatenation_inputs_that_share_the_output_scale_are_left_alone():
    ops = compiled_int8(qdq(CONCAT, "float[2,8] x, float[2,8] z", sz=0.03, zz=0, so=0.03, zo=0))
    assert [code for code, _ in ops] == ["QUANTIZE", "QUANTIZE", "CONCATENATION", "DEQUANTIZE"]


# a fresh model's zero bias quantized at scale 1, added to a product of scale 1e-7 (MobileViT, random weights): as
# quantized, LiteRT's int8 ADD multiplier 2·1/(2^20·1e-7) ≈ 19 > 1 and the kernel aborts
ZERO_BIAS = " qb = QuantizeLinear(b, sb, zb)\n db = DequantizeLinear(qb, sb, zb)\n t = Add(dx, db)"


def zero_bias_model(bias: float):
    scales = {k: np.array(v, np.float32) for k, v in (("sx", 1e-7), ("so", 1e-7), ("sb", 1.0))}
    points = {k: np.array(0, np.int8) for k in ("zx", "zo", "zb")}
    return as_model(model_text(Q_X + ZERO_BIAS + Q_OUT, "float[2,8] x", "float y", b=np.full(8, bias, np.float32),
                               **scales, **points))


def test_a_constant_addend_moves_to_the_output_scale_when_that_holds_it_exactly():
    ops = compiled_int8(zero_bias_model(0.0))
    assert ops == [("QUANTIZE", pytest.approx(1e-7)), ("ADD", pytest.approx(1e-7)), ("DEQUANTIZE", None)]


def test_a_constant_addend_that_the_output_scale_cannot_hold_keeps_the_add_in_float():
    model = zero_bias_model(3.0)  # passes.qdq leaves the Add between its DQ and Q: a float island, as ORT computes it
    assert [code for code, _ in compiled_int8(model)] == ["QUANTIZE", "DEQUANTIZE", "ADD", "QUANTIZE", "DEQUANTIZE"]
    assert "cannot rescale" in compile_onnx(model).quantization["islands"][0]["reason"]

"""passes/qdq.py: Q/DQ pairs become int8 tensor parameters and the ops between them run on int8; what is left lowers
to one QUANTIZE at the float input and one DEQUANTIZE at the float output (none under int8_io). ONNX Runtime's QDQ
result and LiteRT's agree within one quantization step."""
from __future__ import annotations

import numpy as np

from _pass_case import as_model, model_text
from _qdq import steps_off
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(10)
S, Z = (lambda v: np.array(v, np.float32)), (lambda v: np.array(v, np.int8))
Q_X = "qx = QuantizeLinear(x, sx, zx)\n dx = DequantizeLinear(qx, sx, zx)\n"
Q_OUT = "\n q = QuantizeLinear(t, so, zo)\n y = DequantizeLinear(q, so, zo)"
RELU = as_model(model_text(Q_X + " t = Relu(dx)" + Q_OUT, "float[2,8] x", "float y", sx=S(0.03), zx=Z(0),
                           so=S(0.03), zo=Z(0)))


def int8_ops(model, **kwargs) -> list[str]:
    compiled = compile_onnx(model, **kwargs)
    assert compiled.quantization["mode"] == "int8"
    assert max(steps_off(model, compiled).values()) <= 1.01
    return [op.code for op in compiled.graph.ops]


def test_an_op_between_q_and_dq_runs_on_int8():
    assert int8_ops(RELU) == ["QUANTIZE", "RELU", "DEQUANTIZE"]


def test_a_conv_with_dequantized_constant_weights_runs_on_int8():
    w = R.integers(-100, 100, (2, 3, 3, 3)).astype(np.int8)
    model = as_model(model_text(Q_X + " dw = DequantizeLinear(w, sw, zw)\n t = Conv <pads=[1,1,1,1]> (dx, dw)" + Q_OUT,
                                "float[1,3,4,4] x", "float y", sx=S(0.03), zx=Z(0), w=w, sw=S(0.01), zw=Z(0),
                                so=S(0.05), zo=Z(0)))
    assert int8_ops(model) == ["QUANTIZE", "TRANSPOSE", "CONV_2D", "DEQUANTIZE", "TRANSPOSE"]


def test_int8_io_makes_the_quantized_tensors_the_models_inputs_and_outputs():
    compiled = compile_onnx(RELU, int8_io=True)
    g = compiled.graph
    assert [op.code for op in g.ops] == ["RELU"]
    assert [(g.tensors[n].dtype.name, g.tensors[n].quant["scale"]) for n in [*g.inputs, *g.outputs]] == \
        [("int8", [np.float32(0.03)]), ("int8", [np.float32(0.03)])]


# operands at scales 1e-7 and 1 (one calibrated all-zero, as in a random-weight MobileViT): LiteRT's int8 ADD would
# need a rescaling multiplier of ~19 and aborts; the Add stays between its DQ and Q, in float32, as ORT computes it
UNRESCALABLE = ("qz = QuantizeLinear(z, sz, zz)\n dz = DequantizeLinear(qz, sz, zz)\n t = Add(dx, dz)")


def test_an_add_the_int8_kernel_cannot_rescale_stays_a_float_island():
    model = as_model(model_text(Q_X + UNRESCALABLE + Q_OUT, "float[2,8] x, float[2,8] z", "float y", sx=S(1e-7),
                                zx=Z(0), sz=S(1.0), zz=Z(0), so=S(1e-7), zo=Z(0)))
    compiled = compile_onnx(model)
    assert [op.code for op in compiled.graph.ops] == ["QUANTIZE", "DEQUANTIZE", "QUANTIZE", "DEQUANTIZE", "ADD",
                                                      "QUANTIZE", "DEQUANTIZE"]
    assert list(compiled.quantization["kept_float"]) == ["Add_4"]
    assert "cannot rescale" in compiled.quantization["islands"][0]["reason"]
    assert max(steps_off(model, compiled).values()) <= 1.01


def test_an_add_the_int8_kernel_can_rescale_runs_on_int8():
    model = as_model(model_text(Q_X + UNRESCALABLE + Q_OUT, "float[2,8] x, float[2,8] z", "float y", sx=S(0.03),
                                zx=Z(0), sz=S(0.02), zz=Z(0), so=S(0.05), zo=Z(0)))
    assert int8_ops(model) == ["QUANTIZE", "QUANTIZE", "ADD", "DEQUANTIZE"]

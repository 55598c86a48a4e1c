"""passes/float_islands.py: an op of an INT8 model without an integer kernel computes in float32 between a DEQUANTIZE
and a QUANTIZE, and the island is recorded with its reason."""
from __future__ import annotations

import numpy as np

from _pass_case import as_model, model_text
from _qdq import steps_off
from edgekit.converters.tflite import compile_onnx

S, Z = (lambda v: np.array(v, np.float32)), (lambda v: np.array(v, np.int8))
Q_X = "qx = QuantizeLinear(x, sx, zx)\n dx = DequantizeLinear(qx, sx, zx)\n"
Q_OUT = "\n q = QuantizeLinear(t, so, zo)\n y = DequantizeLinear(q, so, zo)"


def compiled(op: str):
    model = as_model(model_text(Q_X + f" t = {op}(dx)" + Q_OUT, "float[2,8] x", "float y", sx=S(0.03), zx=Z(0),
                                so=S(1 / 128), zo=Z(0)))
    result = compile_onnx(model)
    assert max(steps_off(model, result).values()) <= 1.01
    return result


def test_an_op_without_an_int8_kernel_is_a_recorded_float_island():
    result = compiled("Erf")
    ops = [op.code for op in result.graph.ops]
    assert ops[:2] == ["QUANTIZE", "DEQUANTIZE"] and ops[-2:] == ["QUANTIZE", "DEQUANTIZE"]
    assert "EXP" in ops[2:-2]  # Erf in float32 (its polynomial form)
    assert result.quantization["islands"] == [
        {"nodes": ["Erf_2"], "ops": ["Erf"], "reason": "no integer kernel for Erf in this compiler: computed in float32"}]


def test_an_op_with_an_int8_kernel_is_no_island():
    result = compiled("Tanh")
    assert [op.code for op in result.graph.ops] == ["QUANTIZE", "TANH", "DEQUANTIZE"]
    assert result.quantization["islands"] == []

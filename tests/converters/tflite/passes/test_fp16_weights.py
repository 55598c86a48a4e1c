"""passes/fp16_weights.py: under precision "fp16", float32 constants of 16 elements or more are stored float16 and
widened by one DEQUANTIZE each (evaluated once at load); smaller ones stay float32."""
from __future__ import annotations

import numpy as np

from _pass_case import assert_converts, compiled_ops, model_text

R = np.random.default_rng(7)
DENSE = model_text("m = MatMul(x, w)\n y = Add(m, b)", "float[2,32] x", "float y",
                   w=R.standard_normal((32, 8)).astype(np.float32), b=R.standard_normal(8).astype(np.float32))


def test_large_float32_weights_are_stored_float16_behind_a_dequantize():
    compiled = assert_converts(DENSE, precision="fp16", atol=1e-2, rtol=1e-2)
    g = compiled.graph
    assert [op.code for op in g.ops] == ["DEQUANTIZE", "FULLY_CONNECTED", "ADD"]
    stored = {t.name: t.dtype.name for t in g.tensors.values() if t.data is not None}
    assert sorted(stored.values()) == ["float16", "float32"]  # the 32x8 weight halves, the 8-element bias does not
    assert stored[g.ops[0].inputs[0]] == "float16" and g.tensors[g.ops[0].outputs[0]].data is None


def test_without_fp16_precision_weights_stay_float32():
    assert compiled_ops(DENSE) == ["FULLY_CONNECTED", "ADD"]

"""passes/layernorm.py: a decomposed LayerNorm becomes LayerNormalization (MEAN / SUB / MUL / RSQRT / ADD, no POW,
SQRT or DIV); one left decomposed says why in the conversion notes."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, declined, model_text

R = np.random.default_rng(2)
LN = ("m = ReduceMean(x, ax)\n d = Sub(x, m)\n q = Pow(d, two)\n v = ReduceMean(q, ax)\n ve = Add(v, eps)\n"
      " sd = Sqrt(ve)\n n = Div(d, sd)\n g = Mul(n, gamma)\n y = Add(g, beta)")
INITS = {"ax": np.array([-1], np.int64), "two": np.float32(2), "eps": np.float32(1e-5),
         "gamma": R.standard_normal(8).astype(np.float32), "beta": R.standard_normal(8).astype(np.float32)}


def test_decomposed_layernorm_is_fused():
    text = model_text(LN, "float[2,4,8] x", "float y", **INITS)
    assert compiled_ops(text) == ["MEAN", "SUB", "MUL", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "ADD"]
    assert declined(text) == []


def test_square_as_mul_is_fused_too():
    text = model_text(LN.replace("Pow(d, two)", "Mul(d, d)"), "float[2,4,8] x", "float y",
                      **{k: v for k, v in INITS.items() if k != "two"})
    assert compiled_ops(text) == ["MEAN", "SUB", "MUL", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "ADD"]


def test_a_mean_read_elsewhere_keeps_the_decomposition_and_says_why():
    text = model_text(LN + "\n z = Neg(m)", "float[2,4,8] x", "float y, float z", **INITS)
    assert compiled_ops(text) == ["MEAN", "SUB", "MUL", "MEAN", "ADD", "SQRT", "DIV", "MUL", "ADD", "NEG"]
    assert declined(text) == ["LayerNorm fusion not applied at 'Sub_1': the mean is read elsewhere (the decomposed "
                              "ops are kept)"]

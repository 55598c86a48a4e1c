"""passes/gelu.py: the exact (Erf) and tanh GELU subgraphs become one GELU builtin; a GELU-shaped Erf/Tanh left
decomposed says why in the conversion notes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from _pass_case import compiled_ops, declined, model_text

ERF = "d = Div(x, s2)\n e = Erf(d)\n p = Add(e, one)\n h = Mul(x, half)\n y = Mul(h, p)"
TANH = "c3 = Pow(x, three)\n k = Mul(c3, a)\n i = Add(x, k)\n s = Mul(i, b)\n t = Tanh(s)\n p = Add(t, one)\n" \
       " h = Mul(p, half)\n y = Mul(x, h)"
CONSTS = {"s2": np.float32(math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5), "three": np.float32(3),
          "a": np.float32(0.044715), "b": np.float32(math.sqrt(2 / math.pi))}


def consts(body):
    return {k: v for k, v in CONSTS.items() if f"{k})" in body or f"{k}," in body or f", {k}" in body}


@pytest.mark.parametrize("body, approximate", [(ERF, "none"), (TANH, "tanh")])
def test_gelu_subgraphs_become_one_gelu(body, approximate):
    text = model_text(body, "float[2,8] x", "float y", **consts(body))
    assert compiled_ops(text) == ["GELU"]
    assert declined(text) == []


def test_a_gelu_whose_one_plus_erf_is_read_elsewhere_stays_decomposed_and_says_why():
    body = ERF + "\n z = Neg(p)"
    text = model_text(body, "float[2,8] x", "float y, float z", **consts(body))
    ops = compiled_ops(text)
    assert "GELU" not in ops and ops[-1] == "NEG"
    assert declined(text) == ["GELU fusion not applied at 'Erf_1': Erf(...) + 1 is not multiplied by 0.5 and x alone, "
                              "or is read elsewhere (its ops are kept)"]

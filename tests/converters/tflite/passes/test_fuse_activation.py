"""passes/fuse_activation.py: RELU / RELU6 after an op with a fused-activation option is folded into it, and an
activation left alone says why in the conversion notes."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import assert_converts, compiled_ops, declined, model_text

R = np.random.default_rng(0)
W = R.standard_normal((4, 3, 3, 3)).astype(np.float32)
CLIP6 = {"lo": np.float32(0), "hi": np.float32(6)}
X = "float[1,3,8,8] x"


@pytest.mark.parametrize("body, inits, code", [
    ("c = Conv <pads=[1,1,1,1]> (x, w)\n y = Relu(c)", {"w": W}, 1),
    ("c = Conv <pads=[1,1,1,1]> (x, w)\n y = Clip(c, lo, hi)", {"w": W, **CLIP6}, 3),
])
def test_an_activation_after_a_conv_becomes_its_fused_option(body, inits, code):
    text = model_text(body, X, "float y", **inits)
    compiled = assert_converts(text)
    assert [op.code for op in compiled.graph.ops] == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]
    assert compiled.graph.ops[1].options["fusedActivationFunction"] == code
    assert declined(text) == []


def test_an_elementwise_add_takes_the_relu():
    assert compiled_ops(model_text("c = Add(x, z)\n y = Relu(c)", f"{X}, float[1,3,8,8] z", "float y")) == ["ADD"]


def test_a_conv_output_read_twice_keeps_its_relu_and_says_why():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n y = Relu(c)\n z = Neg(c)", X, "float y, float z", w=W)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "RELU", "NEG", "TRANSPOSE", "TRANSPOSE"]
    assert declined(text) == ["RELU fusion into CONV_2D not applied at 'c': its input has 2 readers"]


def test_transpose_conv_fuses_only_relu():
    w = R.standard_normal((3, 4, 2, 2)).astype(np.float32)
    relu = model_text("c = ConvTranspose <strides=[2,2]> (x, w)\n y = Relu(c)", X, "float y", w=w)
    assert compiled_ops(relu) == ["TRANSPOSE", "TRANSPOSE_CONV", "TRANSPOSE"]
    relu6 = model_text("c = ConvTranspose <strides=[2,2]> (x, w)\n y = Clip(c, lo, hi)", X, "float y", w=w, **CLIP6)
    assert compiled_ops(relu6) == ["TRANSPOSE", "TRANSPOSE_CONV", "RELU6", "TRANSPOSE"]
    assert declined(relu6) == ["RELU6 fusion into TRANSPOSE_CONV not applied at 'c': LiteRT's TRANSPOSE_CONV kernels "
                               "honour only a fused RELU"]

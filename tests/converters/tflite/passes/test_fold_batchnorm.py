"""passes/fold_batchnorm.py: BatchNormalization after a constant-weight Conv is folded into its weights and bias;
one that cannot be folded stays MUL + ADD and the conversion notes say why."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, declined, model_text

R = np.random.default_rng(1)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


BN = {"w": f32(4, 3, 3, 3), "s": f32(4), "o": f32(4), "m": f32(4), "v": np.abs(f32(4)) + 0.5}
X = "float[1,3,8,8] x"


def test_batchnorm_after_conv_is_folded_into_it():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n y = BatchNormalization(c, s, o, m, v)", X, "float y", **BN)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]
    assert declined(text) == []


def test_batchnorm_then_relu_is_one_conv():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n b = BatchNormalization(c, s, o, m, v)\n y = Relu(b)",
                      X, "float y", **BN)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]


def test_a_conv_output_read_elsewhere_keeps_mul_add_and_says_why():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n y = BatchNormalization(c, s, o, m, v)\n z = Relu(c)",
                      X, "float y, float z", **BN)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "MUL", "ADD", "RELU", "TRANSPOSE", "TRANSPOSE"]
    assert declined(text)[0] == ("BatchNormalization folding into Conv not applied at 'BatchNormalization_1': the conv "
                                 "output has another reader (MUL + ADD kept)")


def test_a_grouped_conv_transpose_keeps_mul_add_and_says_why():
    text = model_text("c = ConvTranspose <group=3, strides=[2,2]> (x, w)\n y = BatchNormalization(c, s, o, m, v)",
                      X, "float y", w=f32(3, 2, 2, 2), s=f32(6), o=f32(6), m=f32(6), v=np.abs(f32(6)) + 0.5)
    assert "MUL" in compiled_ops(text)
    assert declined(text) == ["BatchNormalization folding into ConvTranspose not applied at 'BatchNormalization_1': "
                              "a grouped ConvTranspose (MUL + ADD kept)"]

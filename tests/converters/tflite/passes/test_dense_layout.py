"""passes/dense_layout.py: a flatten of an NHWC value into a dense layer, and a dense layer reshaped into an NHWC value,
need no TRANSPOSE: the dense weights (and bias) are permuted at compile time and the reshape reads memory as it lies."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, declined, model_text

R = np.random.default_rng(3)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


CONV = {"w": f32(2, 3, 3, 3)}
X = "float[1,3,4,4] x"
SHAPE = np.array([1, 2, 4, 4], np.int64)


def test_flatten_of_a_conv_into_gemm_reads_nhwc_memory_with_permuted_rows():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n r = Relu(c)\n f = Flatten(r)\n y = Gemm(f, b)", X, "float y",
                      b=f32(32, 5), **CONV)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert declined(text) == []


def test_flatten_into_a_transposed_gemm_with_bias_permutes_the_weight_columns():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n f = Flatten(c)\n y = Gemm <transB=1> (f, b, bias)", X,
                      "float y", b=f32(5, 32), bias=f32(5), **CONV)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]


def test_a_flatten_read_elsewhere_keeps_its_transpose():
    text = model_text("c = Conv <pads=[1,1,1,1]> (x, w)\n f = Flatten(c)\n y = Gemm(f, b)\n z = Relu(f)", X,
                      "float y, float z", b=f32(32, 5), **CONV)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE", "RESHAPE", "FULLY_CONNECTED", "RELU"]


def test_gemm_reshaped_into_a_conv_input_permutes_its_outputs_instead_of_transposing():
    text = model_text("d = Gemm(x, b, bias)\n r = Reshape(d, shape)\n y = Conv <pads=[1,1,1,1]> (r, w)",
                      "float[1,6] x", "float y", b=f32(6, 32), bias=f32(32), shape=SHAPE, w=f32(3, 2, 3, 3))
    assert compiled_ops(text) == ["FULLY_CONNECTED", "RESHAPE", "CONV_2D", "TRANSPOSE"]


def test_an_activation_between_gemm_and_reshape_follows_the_permuted_layout():
    text = model_text("d = Gemm(x, b, bias)\n a = Relu(d)\n r = Reshape(a, shape)\n y = Conv <pads=[1,1,1,1]> (r, w)",
                      "float[1,6] x", "float y", b=f32(6, 32), bias=f32(32), shape=SHAPE, w=f32(3, 2, 3, 3))
    assert compiled_ops(text) == ["FULLY_CONNECTED", "RESHAPE", "CONV_2D", "TRANSPOSE"]


def test_a_gemm_output_read_elsewhere_keeps_the_transpose():
    text = model_text("d = Gemm(x, b, bias)\n r = Reshape(d, shape)\n y = Conv <pads=[1,1,1,1]> (r, w)\n z = Neg(d)",
                      "float[1,6] x", "float y, float z", b=f32(6, 32), bias=f32(32), shape=SHAPE, w=f32(3, 2, 3, 3))
    assert compiled_ops(text) == ["FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "CONV_2D", "NEG", "TRANSPOSE"]

"""passes/matmul_adjoint.py: a MatMul operand transposed in its last two axes is read by BATCH_MATMUL's adj_x/adj_y
flag instead of a TRANSPOSE op (attention's scaling Mul in between is rewritten onto the untransposed data)."""
from __future__ import annotations

import numpy as np

from _pass_case import assert_converts, declined, model_text


def test_transposed_left_operand_becomes_adj_x():
    compiled = assert_converts(model_text("t = Transpose<perm=[0,2,1]>(a)\n y = MatMul(t, b)",
                                          "float[2,8,4] a, float[2,8,5] b", "float y"))
    assert [op.code for op in compiled.graph.ops] == ["BATCH_MATMUL"]
    assert compiled.graph.ops[0].options.get("adjX") is True


def test_scaled_transposed_right_operand_becomes_adj_y():
    compiled = assert_converts(model_text("t = Transpose<perm=[0,2,1]>(b)\n s = Mul(t, sc)\n y = MatMul(a, s)",
                                          "float[2,4,8] a, float[2,5,8] b", "float y", sc=np.float32(0.125)))
    assert [op.code for op in compiled.graph.ops] == ["MUL", "BATCH_MATMUL"]
    assert compiled.graph.ops[1].options.get("adjY") is True


def test_a_transpose_read_elsewhere_stays_and_says_why():
    text = model_text("t = Transpose<perm=[0,2,1]>(a)\n y = MatMul(t, b)\n z = Neg(t)", "float[2,8,4] a, float[2,8,5] b",
                      "float y, float z")
    compiled = assert_converts(text)
    assert declined(text) == ["MatMul adj_x not applied at 'MatMul_1': the transposed operand 't' is read elsewhere "
                              "(a TRANSPOSE op is kept)"]
    # the layout pass runs Neg on the untransposed data and moves the transpose to its output
    assert [op.code for op in compiled.graph.ops] == ["TRANSPOSE", "BATCH_MATMUL", "NEG", "TRANSPOSE"]
    assert not compiled.graph.ops[1].options.get("adjX")

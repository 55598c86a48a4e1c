"""passes/constant_folding.py: nodes with only constant inputs, and Shape/Size of statically shaped values (only the
dims read need be static), become constants at compile time; a Shape that reads a run-time dim stays in the model."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, model_text

R = np.random.default_rng(8)
ZERO, ONE = np.array(0, np.int64), np.array(1, np.int64)
SHAPE_DIM = "s = Shape(x)\n g = Gather <axis=0> (s, i)\n c = Cast <to=1> (g)\n y = Mul(x, c)"


def test_arithmetic_on_constants_is_computed_at_compile_time():
    text = model_text("c = Add(a, b)\n d = Neg(c)\n y = Mul(x, d)", "float[2,3] x", "float y",
                      a=R.standard_normal(3).astype(np.float32), b=R.standard_normal(3).astype(np.float32))
    assert compiled_ops(text) == ["MUL"]


def test_shape_arithmetic_on_a_static_value_folds():
    assert compiled_ops(model_text(SHAPE_DIM, "float[2,3] x", "float y", i=ONE)) == ["MUL"]


def test_size_of_a_static_value_folds():
    assert compiled_ops(model_text("n = Size(x)\n c = Cast <to=1> (n)\n y = Div(x, c)", "float[2,3] x", "float y")) \
        == ["DIV"]


def test_a_shape_that_reads_only_static_dims_folds_though_another_dim_is_dynamic():
    text = model_text("s = Shape <start=2> (x)\n c = Cast <to=1> (s)\n y = Mul(x, c)", "float[N,3,4] x", "float y")
    assert compiled_ops(text) == ["MUL"]


def test_a_shape_that_reads_a_run_time_dim_stays_in_the_model():
    text = model_text(SHAPE_DIM, "float[N,3] x", "float y", i=ZERO)
    assert compiled_ops(text) == ["SHAPE", "GATHER", "RESHAPE", "CAST", "MUL"]
    assert compiled_ops(text, input_shapes={"x": [2, 3]}) == ["MUL"]  # fixed at compile time: folds

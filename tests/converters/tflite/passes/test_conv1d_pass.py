"""passes/conv1d.py: 1-D Conv and pooling become their 2-D forms over a unit height, and a stack of 1-D layers stays
one NHWC chain with one reshape and transpose at each end."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, model_text

R = np.random.default_rng(9)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


X = "float[1,4,16] x"


def test_a_1d_conv_with_activation_is_one_conv_2d():
    text = model_text("c = Conv <pads=[1,1]> (x, w)\n y = Relu(c)", X, "float y", w=f32(8, 4, 3))
    assert compiled_ops(text) == ["RESHAPE", "TRANSPOSE", "CONV_2D", "TRANSPOSE", "RESHAPE"]


def test_a_stack_of_1d_layers_keeps_the_unit_axis_between_them():
    text = model_text("c = Conv <pads=[1,1]> (x, w)\n r = Relu(c)\n d = Conv <pads=[1,1]> (r, v)\n"
                      " p = MaxPool <kernel_shape=[2], strides=[2]> (d)\n y = Add(p, p)", X, "float y",
                      w=f32(8, 4, 3), v=f32(8, 8, 3))
    assert compiled_ops(text) == ["RESHAPE", "TRANSPOSE", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "ADD", "TRANSPOSE",
                                  "RESHAPE"]


def test_global_average_pool_over_a_sequence_is_a_mean_of_the_2d_form():
    text = model_text("c = Conv (x, w)\n y = GlobalAveragePool(c)", X, "float y", w=f32(8, 4, 1))
    assert compiled_ops(text) == ["RESHAPE", "TRANSPOSE", "CONV_2D", "MEAN", "RESHAPE"]

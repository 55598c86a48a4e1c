"""passes/layout.py: convolutions and pooling run NHWC, layout-agnostic ops follow their producers, and a Relayout
(TRANSPOSE, or RESHAPE when only size-1 dims move) appears only where layouts disagree: at the model input, before a
layout-sensitive op, at the outputs (kept NHWC under nhwc_io)."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, model_text

R = np.random.default_rng(4)
W = {"w": R.standard_normal((2, 3, 3, 3)).astype(np.float32)}
X = "float[1,3,4,4] x"
CONV = "c = Conv <pads=[1,1,1,1]> (x, w)\n"


def test_a_conv_pool_chain_transposes_once_in_and_once_out():
    text = model_text(CONV + " r = Relu(c)\n a = Add(r, r)\n y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)",
                      X, "float y", **W)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "ADD", "MAX_POOL_2D", "TRANSPOSE"]


def test_nhwc_io_keeps_4d_inputs_and_outputs_nhwc_without_transposes():
    text = model_text(CONV + " y = Relu(c)", X, "float y", **W)
    assert compiled_ops(text, nhwc_io=True) == ["CONV_2D"]
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]


def test_a_reshape_of_an_nhwc_value_goes_back_to_onnx_layout_first():
    text = model_text(CONV + " y = Reshape(c, shape)", X, "float y", shape=np.array([1, 2, 16], np.int64), **W)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE", "RESHAPE"]


def test_a_relayout_that_only_moves_size_1_dims_is_a_reshape():
    text = model_text("c = Conv (x, w)\n y = Reshape(c, shape)", "float[1,3,1,1] x", "float y",
                      w=R.standard_normal((8, 3, 1, 1)).astype(np.float32), shape=np.array([1, 8], np.int64))
    assert compiled_ops(text) == ["RESHAPE", "CONV_2D", "RESHAPE"]


def test_one_relayout_serves_every_reader_that_needs_it():
    text = model_text(CONV + " y = Relu(c)\n z = Reshape(c, shape)\n u = Reshape(c, shape)", X,
                      "float y, float z, float u", shape=np.array([1, 2, 16], np.int64), **W)
    assert compiled_ops(text) == ["TRANSPOSE", "CONV_2D", "RELU", "TRANSPOSE", "RESHAPE", "RESHAPE", "TRANSPOSE"]


def test_a_graph_without_layout_sensitive_ops_has_no_relayout():
    assert compiled_ops(model_text("a = Relu(x)\n y = Add(a, x)", X, "float y")) == ["RELU", "ADD"]

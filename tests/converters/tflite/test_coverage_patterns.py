"""Patterns from the model-coverage suite (benchmarks/coverage.py) that blocked real architectures, each reproduced by
a tiny model: compile, run LiteRT and ONNX Runtime on the same seeded inputs, compare at output scale — or, where
TFLite cannot express the pattern, the refusal and its reason."""
from __future__ import annotations

import pytest

from _differential import as_model, assert_converts
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError
from test_ops import Row, f32

X5 = "float[1,3,4,8,8] x"  # N, C, D, H, W: a video clip
ROWS = [
    # --- Conv3D (torchvision's R3D-18): CONV_3D between transposes to and from NDHWC
    Row("Conv", 13, "y = Conv <pads=[1,1,1,1,1,1]> (x, w, b)", inputs=X5,
        ops={"TRANSPOSE": 2, "CONV_3D": 1}, inits={"w": f32(4, 3, 3, 3, 3), "b": f32(4)}, id="conv3d_same"),
    Row("Conv", 13, "y = Conv <strides=[1,2,2], pads=[1,3,3,1,3,3]> (x, w)", inputs=X5,
        ops={"TRANSPOSE": 2, "PAD": 1, "CONV_3D": 1}, inits={"w": f32(5, 3, 3, 7, 7)}, id="conv3d_r3d_stem_explicit_pad"),
    Row("Conv", 13, "y = Conv <strides=[2,1,1], dilations=[1,2,2]> (x, w, b)", inputs=X5,
        ops={"TRANSPOSE": 2, "CONV_3D": 1}, inits={"w": f32(2, 3, 1, 3, 3), "b": f32(2)}, id="conv3d_valid_dilated"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def test_a_grouped_3d_convolution_is_refused_naming_conv_3d():
    row = Row("Conv", 13, "y = Conv <group=3> (x, w)", inputs=X5, inits={"w": f32(6, 1, 3, 3, 3)})
    with pytest.raises(UnsupportedModelError, match="group=3 in a 3-D convolution: TFLite's CONV_3D has no grouped"):
        compile_onnx(as_model(row.text()))

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


CONV3D = Row("Conv", 13, "c = Conv <pads=[1,1,1,1,1,1]> (x, w, b)\n y = Relu(c)", inputs=X5,
             inits={"w": f32(4, 3, 3, 3, 3), "b": f32(4)})


def test_an_int8_3d_convolution_is_a_float_island(tmp_path):
    """CONV_3D has no int8 kernel: in an INT8 model the convolution stays float between DEQUANTIZE and QUANTIZE
    (what ONNX Runtime's QDQ model computes), with that reason, instead of refusing the model (R3D-18)."""
    from _qdq import ort_qdq, steps_off
    model = ort_qdq(as_model(CONV3D.text()), tmp_path)
    compiled = compile_onnx(model)
    assert "CONV_3D" in compiled.op_histogram
    assert any("CONV_3D has no int8 kernel" in island["reason"] for island in compiled.quantization["islands"])
    assert max(steps_off(model, compiled).values()) <= 4


def test_a_dynamic_range_3d_convolution_runs_in_float_with_its_weights_dequantized(tmp_path):
    import contextlib
    import io

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    onnx.save(as_model(CONV3D.text()), str(tmp_path / "float.onnx"))
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "dynamic.onnx"), weight_type=QuantType.QInt8)
    model = onnx.load(str(tmp_path / "dynamic.onnx"))
    assert any(n.op_type == "ConvInteger" for n in model.graph.node)
    compiled = assert_converts(model, atol=5e-2, rtol=5e-2)
    conv = next(op for op in compiled.graph.ops if op.code == "CONV_3D")
    assert compiled.graph.tensors[conv.inputs[1]].dtype.name == "float32"  # the int8 weights, dequantized

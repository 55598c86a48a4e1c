"""Resize, convolution and pooling in every padding / coordinate form: compile, run, compare with ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError
from test_ops import Row, f32, i64


def scales(*values):
    return np.asarray(values, np.float32)


def resize(attrs: str, args: str = "x, , s") -> str:
    return f"y = Resize <{attrs}> ({args})"


CONV_W = {"w": f32(4, 3, 3, 3), "b": f32(4)}
CT_W = {"w": f32(3, 2, 3, 3), "b": f32(2)}
NHWC_NN = {"TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"}
NHWC_BL = {"TRANSPOSE", "RESIZE_BILINEAR"}
GATHERED = {"TRANSPOSE", "GATHER"}
MATRIX = {"TRANSPOSE", "RESHAPE", "BATCH_MATMUL"}
ROWS = [
    # --- Resize: TFLite builtins where their sampling grid is exactly ONNX's, else the per-axis matrices
    Row("Resize", 13, resize('mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="floor"'),
        ops=GATHERED, inits={"s": scales(1, 1, 2, 2)}, id="nearest_half_pixel_floor_gather"),
    Row("Resize", 13, resize('mode="nearest", coordinate_transformation_mode="half_pixel", '
                             'nearest_mode="round_prefer_ceil"'), ops=NHWC_NN, inits={"s": scales(1, 1, 3, 1.5)},
        id="nearest_round_prefer_ceil_builtin"),
    Row("Resize", 13, resize('mode="nearest", coordinate_transformation_mode="align_corners", nearest_mode="floor"',
                             "x, , , z"), ops=GATHERED, inits={"z": i64(1, 3, 13, 5)}, id="nearest_align_corners_floor"),
    Row("Resize", 13, resize('mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="ceil"'),
        ops=GATHERED, inits={"s": scales(1, 1, 0.5, 0.75)}, id="nearest_downsample_ceil"),
    Row("Resize", 13, resize('mode="linear", coordinate_transformation_mode="align_corners"'), ops=NHWC_BL,
        inits={"s": scales(1, 1, 0.5, 0.75)}, id="downsample_linear_align_corners_builtin"),
    Row("Resize", 13, resize('mode="linear", coordinate_transformation_mode="pytorch_half_pixel"', "x, , , z"),
        ops={"TRANSPOSE", "RESHAPE", "BATCH_MATMUL", "GATHER"}, inits={"z": i64(1, 3, 5, 1)},
        id="linear_pytorch_half_pixel_to_one"),
    Row("Resize", 13, resize('mode="linear", coordinate_transformation_mode="half_pixel"'), ops=MATRIX,
        inits={"s": scales(1, 1, 1.7, 0.6)}, id="linear_half_pixel_fractional"),
    Row("Resize", 13, resize('mode="linear", coordinate_transformation_mode="asymmetric"'), ops=NHWC_BL,
        inits={"s": scales(1, 1, 2, 4)}, id="linear_asymmetric_builtin"),
    Row("Resize", 13, resize('mode="cubic"'), ops=MATRIX, inits={"s": scales(1, 1, 2, 0.5)}, id="cubic"),
    Row("Resize", 13, resize('mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1'), ops=MATRIX,
        inits={"s": scales(1, 1, 1.5, 2)}, id="cubic_exclude_outside"),
    Row("Resize", 13, resize('mode="linear", coordinate_transformation_mode="tf_crop_and_resize", '
                             'extrapolation_value=2.5', "x, r, , z"),
        ops={"TRANSPOSE", "RESHAPE", "BATCH_MATMUL", "ADD"}, inits={"z": i64(1, 3, 6, 6),
                                                                     "r": scales(0, 0, 0.2, -0.3, 1, 1, 1.4, 0.8)},
        id="tf_crop_and_resize_extrapolation"),
    Row("Resize", 13, resize('mode="linear"'), inputs="float[2,3,4] x", ops={"RESHAPE", "BATCH_MATMUL"},
        inits={"s": scales(1, 2, 1.5)}, id="rank3_channels_too"),
    Row("Resize", 18, resize('mode="nearest", axes=[3,2]'), ops=NHWC_NN, inits={"s": scales(3, 2)},
        id="axes_3_2"),
    Row("Resize", 18, resize('mode="linear", antialias=1'), ops=MATRIX, inits={"s": scales(1, 1, 0.6, 0.5)},
        id="antialias_downsample"),
    Row("Resize", 18, resize('mode="nearest", axes=[2,3], keep_aspect_ratio_policy="not_larger"', "x, , , z"),
        ops=GATHERED, inits={"z": i64(5, 12)}, id="keep_aspect_not_larger"),
    Row("Resize", 19, resize('mode="linear", coordinate_transformation_mode="half_pixel_symmetric"'), ops=MATRIX,
        inits={"s": scales(1, 1, 1.7, 0.6)}, id="half_pixel_symmetric"),
    Row("Resize", 11, resize('mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn"', "x, r, s"),
        ops=GATHERED, inits={"r": scales(), "s": scales(1, 1, 2, 2)}, id="opset11_tf_half_pixel_for_nn"),
    Row("Resize", 10, "y = Resize <mode=\"nearest\"> (x, s)", ops=GATHERED, inits={"s": scales(1, 1, 0.6, 0.45)},
        inputs="float[1,3,5,7] x", id="opset10_downsample_ceils"),
    Row("Upsample", 9, "y = Upsample <mode=\"linear\"> (x, s)", ops=NHWC_BL, inits={"s": scales(1, 1, 2, 3)},
        id="opset9_linear"),
    # --- Conv: TFLite SAME/VALID where they reproduce the pads, else PAD first
    Row("Conv", 13, "y = Conv <strides=[2,2], auto_pad=\"SAME_LOWER\"> (x, w, b)", ops={"TRANSPOSE", "PAD", "CONV_2D"},
        inits=CONV_W, id="same_lower_stride2"),
    Row("Conv", 13, "y = Conv <pads=[0,1,2,1]> (x, w, b)", ops={"TRANSPOSE", "PAD", "CONV_2D"}, inits=CONV_W,
        id="asymmetric_pads"),
    Row("Conv", 13, "y = Conv <auto_pad=\"VALID\", strides=[2,1], dilations=[1,2]> (x, w, b)",
        ops={"TRANSPOSE", "CONV_2D"}, inits=CONV_W, id="valid_strided_dilated"),
    Row("Conv", 13, "y = Conv <dilations=[2,2], pads=[0,1,2,3], strides=[1,2]> (x, w, b)",
        ops={"TRANSPOSE", "PAD", "CONV_2D"}, inits=CONV_W, id="dilated_asymmetric_pads"),
    Row("Conv", 11, "y = Conv <group=3, auto_pad=\"SAME_UPPER\", strides=[2,2]> (x, w)",
        ops={"TRANSPOSE", "DEPTHWISE_CONV_2D"}, inits={"w": f32(3, 1, 4, 4)}, id="depthwise_even_kernel_same"),
    # --- ConvTranspose: one TRANSPOSE_CONV when its output size and padding reach the ONNX window, else SLICE
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,2], auto_pad=\"SAME_UPPER\"> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV"}, inits=CT_W, id="same_upper"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,2], auto_pad=\"SAME_LOWER\"> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV", "SLICE"}, inits=CT_W, id="same_lower"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,3], pads=[0,1,2,0]> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV", "SLICE"}, inits=CT_W, id="asymmetric_pads"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[3,2], output_shape=[26,18]> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV"}, inits=CT_W, id="output_shape_past_full"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,2], output_padding=[1,0]> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV"}, inits=CT_W, id="output_padding_valid"),
    Row("ConvTranspose", 13, "y = ConvTranspose <dilations=[2,2], pads=[1,1,1,1]> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV", "SLICE"}, inits=CT_W, id="dilated"),
    Row("ConvTranspose", 13, "y = ConvTranspose <group=3, strides=[2,2]> (x, w, b)",
        ops={"TRANSPOSE", "SPLIT", "TRANSPOSE_CONV", "CONCATENATION"}, inits={"w": f32(3, 2, 3, 3), "b": f32(6)},
        id="grouped"),
    # --- pooling: SAME/VALID where TFLite reproduces the window, else PAD; averages get a divisor correction MUL
    Row("AveragePool", 13, "y = AveragePool <kernel_shape=[3,3], pads=[0,1,2,1], count_include_pad=0> (x)",
        ops={"TRANSPOSE", "PAD", "AVERAGE_POOL_2D", "MUL"}, id="exclude_pad_asymmetric"),
    Row("AveragePool", 19, "y = AveragePool <kernel_shape=[3,3], strides=[2,2], auto_pad=\"SAME_LOWER\"> (x)",
        ops={"TRANSPOSE", "PAD", "AVERAGE_POOL_2D", "MUL"}, id="same_lower_exclude_pad"),
    Row("AveragePool", 10, "y = AveragePool <kernel_shape=[3,3], strides=[2,2], ceil_mode=1> (x)",
        ops={"TRANSPOSE", "AVERAGE_POOL_2D"}, id="ceil_mode_as_tflite_same"),
    Row("AveragePool", 11, "y = AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], ceil_mode=1, "
        "count_include_pad=1> (x)", ops={"TRANSPOSE", "PAD", "AVERAGE_POOL_2D", "MUL"},
        id="ceil_mode_count_include_pad"),
    Row("AveragePool", 7, "y = AveragePool <kernel_shape=[2,2], pads=[1,0,0,1], count_include_pad=1> (x)",
        ops={"TRANSPOSE", "PAD", "AVERAGE_POOL_2D"}, id="opset7_include_pad_asymmetric"),
    Row("MaxPool", 12, "y = MaxPool <kernel_shape=[3,3], strides=[2,2], auto_pad=\"SAME_LOWER\"> (x)",
        ops={"TRANSPOSE", "PADV2", "MAX_POOL_2D"}, id="same_lower"),
    Row("MaxPool", 12, "y = MaxPool <kernel_shape=[2,3], pads=[0,2,1,0], strides=[1,2], ceil_mode=1> (x)",
        ops={"TRANSPOSE", "PADV2", "MAX_POOL_2D"}, id="asymmetric_pads_ceil_mode"),
    Row("LpPool", 18, "y = LpPool <kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]> (x)",
        ops={"TRANSPOSE", "SQUARE", "PAD", "AVERAGE_POOL_2D", "MUL", "SQRT"}, id="p2_pads"),
    Row("LpPool", 11, "y = LpPool <kernel_shape=[2,2], p=1> (x)", ops={"TRANSPOSE", "ABS", "AVERAGE_POOL_2D", "MUL"},
        id="p1"),
    Row("LpPool", 18, "y = LpPool <kernel_shape=[3,3], p=3, ceil_mode=1, strides=[3,3]> (x)",
        ops={"TRANSPOSE", "ABS", "POW", "PAD", "AVERAGE_POOL_2D", "MUL"}, id="p3_ceil_mode"),
    Row("GlobalLpPool", 13, "y = GlobalLpPool(x)", ops={"TRANSPOSE", "SQUARE", "SUM", "SQRT", "RESHAPE"}, id="p2"),
    Row("GlobalLpPool", 2, "y = GlobalLpPool <p=3> (x)", ops={"TRANSPOSE", "ABS", "POW", "SUM", "RESHAPE"}, id="p3"),
    Row("GlobalLpPool", 2, "y = GlobalLpPool <p=1> (x)", ops={"TRANSPOSE", "ABS", "SUM", "RESHAPE"}, id="p1"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def refusal(body: str, inputs: str = "float[1,3,8,8] x", opset: int = 13, outputs: str = "float y", **inits) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(model_text(body, inputs, outputs, opset, **inits)))
    return str(info.value)


def test_resize_sizes_computed_at_run_time_are_refused():
    reason = refusal(resize('mode="linear"', "x, , , z"), "float[1,3,8,8] x, int64[4] z", outputs="float[1,3,4,4] y")
    assert "sizes input 'z' is computed at run time" in reason


def test_align_corners_with_a_fractional_resized_length_is_refused():
    """8 x 0.6 = 4.8: the ONNX reference divides by 3.8, ONNX Runtime by 3 (the output size 4 minus 1)."""
    reason = refusal(resize('mode="linear", coordinate_transformation_mode="align_corners"'), s=scales(1, 1, 0.6, 0.6))
    assert "resized length 4.8 is fractional" in reason


def test_transposed_convolution_with_an_ambiguous_output_shape_is_refused():
    """output_shape below the full result without pads: the spec and the reference start it at different places."""
    reason = refusal("y = ConvTranspose <strides=[2,2], output_shape=[14,14]> (x, w)", w=f32(3, 2, 3, 3))
    assert "where it starts is not fixed" in reason


def test_max_pool_indices_are_refused():
    """Refused by the lowering ("its Indices output is used") or, before it, by the integer output's dtype."""
    reason = refusal("y, i = MaxPool <kernel_shape=[2,2]> (x)", outputs="float y, int64 i")
    assert "MaxPool_0 (MaxPool" in reason and ("its Indices output is used" in reason or "'i' is int" in reason)


def test_dilated_pooling_is_refused():
    assert "TFLite pooling has no dilation" in refusal("y = MaxPool <kernel_shape=[2,2], dilations=[2,2]> (x)")


def test_interpolating_int8_data_without_a_matching_builtin_is_refused():
    body = ("q = QuantizeLinear(x, k)\nd = DequantizeLinear(q, k)\n"
            "c = Resize <mode=\"cubic\"> (d, , s)\nr = QuantizeLinear(c, k)\ny = DequantizeLinear(r, k)")
    assert "its exact form is a float matrix product" in refusal(body, k=np.float32(0.05), s=scales(1, 1, 2, 2))

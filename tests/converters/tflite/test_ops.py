"""One row per ONNX op (and attribute variant / opset version): compile, run, compare with ONNX Runtime."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from _differential import assert_converts, model_text

R = np.random.default_rng(42)


def f32(*shape, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(np.float32)


def i64(*values):
    return np.asarray(values, dtype=np.int64)


@dataclass
class Row:
    op: str
    opset: int
    body: str
    inputs: str = "float[1,3,8,8] x"
    ops: object = None  # expected TFLite ops (set) or exact counts (dict)
    inits: dict = field(default_factory=dict)
    nhwc_io: bool = False
    id: str = ""
    outputs: str = "float y"

    def text(self) -> str:
        return model_text(self.body, self.inputs, self.outputs, self.opset, **self.inits)


def windows_10_to_4():
    """torch's adaptive_avg_pool2d 10 -> 4 indices: overlapping windows of 3 starting at 0, 2, 5, 7."""
    rows = np.arange(4)[:, None] * 10 // 4 + np.arange(3)  # [OH, KH]
    h = np.broadcast_to(rows[:, :, None, None], (4, 3, 4, 3))
    w = np.broadcast_to(rows[None, None], (4, 3, 4, 3))
    return np.stack([h, w], -1).astype(np.int64)


X4 = "float[1,3,8,8] x"
QDQ = "q = QuantizeLinear(x, s)\ny = DequantizeLinear(q, s)"
W = {"w": f32(4, 3, 3, 3), "b": f32(4)}
ROWS = [
    # --- convolutions
    Row("Conv", 13, "y = Conv <pads=[1,1,1,1]> (x, w, b)", ops={"TRANSPOSE": 2, "CONV_2D": 1}, inits=W, id="same"),
    Row("Conv", 13, "y = Conv <pads=[1,1,1,1]> (x, w, b)", ops={"CONV_2D": 1}, inits=W, nhwc_io=True, id="nhwc_io"),
    Row("Conv", 13, "y = Conv <strides=[2,2], pads=[1,1,1,1]> (x, w, b)", ops={"TRANSPOSE": 2, "PAD": 1, "CONV_2D": 1},
        inits=W, id="stride2_explicit_pad"),
    Row("Conv", 13, "y = Conv <strides=[2,2], auto_pad=\"SAME_UPPER\"> (x, w)", ops={"TRANSPOSE", "CONV_2D"},
        inits={"w": W["w"]}, id="same_upper_nobias"),
    Row("Conv", 13, "y = Conv <dilations=[2,2]> (x, w, b)", ops={"TRANSPOSE", "CONV_2D"}, inits=W, id="dilated_valid"),
    Row("Conv", 13, "y = Conv <group=3, pads=[1,1,1,1]> (x, w, b)", ops={"TRANSPOSE", "DEPTHWISE_CONV_2D"},
        inits={"w": f32(6, 1, 3, 3), "b": f32(6)}, id="depthwise_multiplier2"),
    Row("Conv", 13, "y = Conv <group=2> (x, w, b)", inputs="float[1,4,6,6] x",
        ops={"TRANSPOSE", "SPLIT", "CONV_2D", "CONCATENATION"}, inits={"w": f32(6, 2, 3, 3), "b": f32(6)}, id="grouped"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,2], pads=[1,1,1,1]> (x, w, b)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV"}, inits={"w": f32(3, 5, 4, 4), "b": f32(5)}, id="same"),
    Row("ConvTranspose", 13, "y = ConvTranspose <strides=[2,2], pads=[1,1,1,1], output_padding=[1,1]> (x, w)",
        ops={"TRANSPOSE", "TRANSPOSE_CONV", "SLICE"}, inits={"w": f32(3, 2, 3, 3)}, id="output_padding_slice"),
    # --- dense
    Row("Gemm", 13, "y = Gemm <transB=1> (x, w, b)", inputs="float[2,16] x", ops={"FULLY_CONNECTED"},
        inits={"w": f32(8, 16), "b": f32(8)}, id="transB"),
    Row("Gemm", 13, "y = Gemm <alpha=0.5, beta=2.0> (x, w, c)", inputs="float[2,16] x", ops={"FULLY_CONNECTED", "ADD"},
        inits={"w": f32(16, 8), "c": f32(2, 8)}, id="alpha_beta_matrix_c"),
    Row("Gemm", 13, "y = Gemm <transB=1> (x, z)", inputs="float[2,16] x, float[8,16] z", ops={"BATCH_MATMUL"},
        id="computed_b"),
    Row("MatMul", 13, "y = MatMul(x, w)", inputs="float[2,5,16] x", ops={"FULLY_CONNECTED"},
        inits={"w": f32(16, 8)}, id="const_3d"),
    Row("MatMul", 13, "y = MatMul(x, z)", inputs="float[2,5,16] x, float[2,16,4] z", ops={"BATCH_MATMUL"},
        id="batched"),
    # --- normalisation
    Row("BatchNormalization", 15, "c = Conv(x, w)\ny = BatchNormalization(c, s, b, m, v)",
        ops={"TRANSPOSE", "CONV_2D"}, inits={"w": f32(4, 3, 1, 1), "s": f32(4), "b": f32(4), "m": f32(4),
                                             "v": np.abs(f32(4)) + 0.5}, id="folded_into_conv"),
    Row("BatchNormalization", 9, "y = BatchNormalization(x, s, b, m, v)", ops={"MUL", "ADD"},
        inits={"s": f32(3), "b": f32(3), "m": f32(3), "v": np.abs(f32(3)) + 0.5}, id="standalone_opset9"),
    Row("LRN", 13, "y = LRN <size=3, alpha=0.001, beta=0.75, bias=1.0> (x)",
        ops={"TRANSPOSE", "LOCAL_RESPONSE_NORMALIZATION"}),
    Row("Softmax", 13, "y = Softmax <axis=-1> (x)", inputs="float[2,10] x", ops={"SOFTMAX"}, id="last"),
    Row("Softmax", 13, "y = Softmax <axis=1> (x)", ops={"TRANSPOSE", "SOFTMAX"}, id="channels"),
    Row("Softmax", 11, "y = Softmax <axis=1> (x)", ops={"RESHAPE", "SOFTMAX"}, id="opset11_coerced_2d"),
    Row("LogSoftmax", 13, "y = LogSoftmax(x)", inputs="float[2,10] x", ops={"LOG_SOFTMAX"}),
    Row("LogSoftmax", 11, "y = LogSoftmax <axis=1> (x)", inputs="float[2,10] x", ops={"LOG_SOFTMAX"}, id="opset11"),
    # --- activations
    Row("Relu", 14, "c = Concat <axis=1> (x, x)\ny = Relu(c)", ops={"CONCATENATION", "RELU"},
        id="after_concat_stays_separate"),  # LiteRT refuses CONCATENATION with a fused activation
    Row("Relu", 13, "y = Relu(x)", ops={"RELU"}),
    Row("Relu", 13, "c = Conv(x, w)\ny = Relu(c)", ops={"TRANSPOSE": 2, "CONV_2D": 1}, inits={"w": f32(4, 3, 1, 1)},
        id="fused_into_conv"),
    Row("Clip", 13, "y = Clip(x, lo, hi)", ops={"RELU6"}, inits={"lo": np.float32(0), "hi": np.float32(6)},
        id="relu6"),
    Row("Clip", 13, "y = Clip(x, lo, hi)", ops={"RELU_N1_TO_1"}, inits={"lo": np.float32(-1), "hi": np.float32(1)},
        id="n1_to_1"),
    Row("Clip", 13, "y = Clip(x, lo, hi)", ops={"MAXIMUM", "MINIMUM"},
        inits={"lo": np.float32(-0.5), "hi": np.float32(0.7)}, id="min_max"),
    Row("Clip", 13, "y = Clip(x, lo)", ops={"RELU"}, inits={"lo": np.float32(0)}, id="min_only"),
    Row("Clip", 6, "y = Clip <min=0.0, max=6.0> (x)", ops={"RELU6"}, id="opset6_attrs"),
    Row("LeakyRelu", 13, "y = LeakyRelu <alpha=0.2> (x)", ops={"LEAKY_RELU"}),
    Row("PRelu", 13, "y = PRelu(x, s)", ops={"PRELU"}, inits={"s": f32(3, 1, 1)}),
    Row("Sigmoid", 13, "y = Sigmoid(x)", ops={"LOGISTIC"}),
    Row("Tanh", 13, "y = Tanh(x)", ops={"TANH"}),
    Row("HardSigmoid", 13, "y = HardSigmoid <alpha=0.1666667, beta=0.5> (x)", ops={"MUL", "ADD", "MAXIMUM", "MINIMUM"}),
    Row("HardSwish", 14, "y = HardSwish(x)", ops={"HARD_SWISH"}),
    Row("Elu", 13, "y = Elu(x)", ops={"ELU"}, id="alpha1"),
    Row("Elu", 13, "y = Elu <alpha=0.5> (x)", ops={"MINIMUM", "EXP", "SUB", "MUL", "RELU", "ADD"}, id="alpha05"),
    Row("Softplus", 13, "y = Softplus(x)", ops={"ABS", "NEG", "EXP", "ADD", "LOG", "RELU"}),
    # --- elementwise
    Row("Add", 13, "y = Add(x, z)", inputs="float[1,3,8,8] x, float[1,3,8,8] z", ops={"ADD"}),
    Row("Add", 13, "c = Conv(x, w)\ny = Add(c, k)", ops={"TRANSPOSE": 2, "CONV_2D": 1, "ADD": 1},
        inits={"w": f32(4, 3, 1, 1), "k": f32(4, 1, 1)}, id="nhwc_broadcast_const"),
    Row("Sub", 13, "y = Sub(x, k)", ops={"SUB"}, inits={"k": f32(8)}, id="broadcast"),
    Row("Mul", 13, "y = Mul(x, z)", inputs="float[1,3,8,8] x, float[1,3,1,1] z", ops={"MUL"}, id="broadcast_input"),
    Row("Div", 13, "y = Div(x, k)", ops={"DIV"}, inits={"k": np.abs(f32(3, 1, 1)) + 1}),
    Row("Sum", 13, "y = Sum(x, z, w)", inputs="float[1,3,8,8] x, float[1,3,8,8] z, float[1,3,8,8] w", ops={"ADD": 2}),
    Row("Max", 13, "y = Max(x, z)", inputs="float[1,3,8,8] x, float[1,3,8,8] z", ops={"MAXIMUM"}),
    Row("Min", 13, "y = Min(x, z, w)", inputs="float[1,3,8,8] x, float[1,3,8,8] z, float[1,3,8,8] w", ops={"MINIMUM": 2}),
    Row("Pow", 13, "a = Abs(x)\ny = Pow(a, e)", ops={"ABS", "POW"}, inits={"e": np.float32(1.5)}, id="general"),
    Row("Pow", 13, "y = Pow(x, e)", ops={"MUL"}, inits={"e": np.float32(2.0)}, id="square"),
    Row("Sqrt", 13, "a = Abs(x)\ny = Sqrt(a)", ops={"ABS", "SQRT"}),
    Row("Exp", 13, "y = Exp(x)", ops={"EXP"}),
    Row("Log", 13, "a = Abs(x)\ny = Log(a)", ops={"ABS", "LOG"}),
    Row("Neg", 13, "y = Neg(x)", ops={"NEG"}),
    Row("Abs", 13, "y = Abs(x)", ops={"ABS"}),
    Row("Reciprocal", 13, "y = Reciprocal(x)", ops={"DIV"}),
    # --- pooling
    Row("MaxPool", 13, "y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (x)", ops={"TRANSPOSE", "MAX_POOL_2D"}),
    Row("MaxPool", 13, "y = MaxPool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]> (x)",
        ops={"TRANSPOSE", "PADV2", "MAX_POOL_2D"}, id="resnet_stem_pads"),
    Row("MaxPool", 13, "y = MaxPool <kernel_shape=[3,3], strides=[2,2], ceil_mode=1> (x)",
        inputs="float[1,3,9,9] x", ops={"TRANSPOSE", "MAX_POOL_2D"}, id="ceil_mode"),
    Row("AveragePool", 13, "y = AveragePool <kernel_shape=[2,2], strides=[2,2]> (x)", ops={"TRANSPOSE", "AVERAGE_POOL_2D"}),
    Row("AveragePool", 13, "y = AveragePool <kernel_shape=[3,3], pads=[1,1,1,1], count_include_pad=1> (x)",
        ops={"TRANSPOSE", "PAD", "AVERAGE_POOL_2D"}, id="count_include_pad"),
    Row("AveragePool", 13, "y = AveragePool <kernel_shape=[3,3], pads=[1,1,1,1]> (x)",
        ops={"TRANSPOSE", "AVERAGE_POOL_2D"}, id="same_exclude_pad"),
    Row("GlobalAveragePool", 13, "y = GlobalAveragePool(x)", ops={"TRANSPOSE", "MEAN", "RESHAPE"}),
    Row("GlobalMaxPool", 13, "y = GlobalMaxPool(x)", ops={"TRANSPOSE", "REDUCE_MAX", "RESHAPE"}),
    # --- reductions
    Row("ReduceMean", 13, "y = ReduceMean <axes=[2,3], keepdims=0> (x)", ops={"MEAN"}),
    Row("ReduceMean", 18, "y = ReduceMean <keepdims=1> (x, a)", ops={"MEAN"}, inits={"a": i64(-1)}, id="axes_input"),
    Row("ReduceMean", 18, "c = Conv(x, w)\ny = ReduceMean <keepdims=0> (c, a)", ops={"TRANSPOSE", "CONV_2D", "MEAN"},
        inits={"w": f32(4, 3, 1, 1), "a": i64(2, 3)}, id="global_pool_after_conv"),
    Row("ReduceSum", 13, "y = ReduceSum <keepdims=1> (x, a)", ops={"SUM"}, inits={"a": i64(1)}),
    Row("ReduceSum", 11, "y = ReduceSum <axes=[1], keepdims=0> (x)", ops={"SUM"}, id="opset11"),
    Row("ReduceMax", 13, "y = ReduceMax <axes=[1]> (x)", ops={"REDUCE_MAX"}),
    Row("ReduceMax", 18, "y = ReduceMax <keepdims=0> (x, a)", ops={"REDUCE_MAX"}, inits={"a": i64(3)}, id="axes_input"),
    # --- shape ops
    Row("Flatten", 13, "y = Flatten(x)", ops={"RESHAPE"}),
    Row("Reshape", 13, "y = Reshape(x, s)", ops={"RESHAPE"}, inits={"s": i64(1, -1, 8)}),
    Row("Transpose", 13, "y = Transpose <perm=[0,2,3,1]> (x)", ops={"TRANSPOSE"}),
    Row("Transpose", 13, "t = Transpose <perm=[0,2,3,1]> (x)\nu = Transpose <perm=[0,3,1,2]> (t)\ny = Relu(u)",
        ops={"RELU"},
        id="cancelled"),
    Row("Squeeze", 13, "y = Squeeze(x, a)", inputs="float[1,3,1,8] x", ops={"RESHAPE"}, inits={"a": i64(2)}),
    Row("Squeeze", 11, "y = Squeeze <axes=[0]> (x)", ops={"RESHAPE"}, id="opset11"),
    Row("Unsqueeze", 13, "y = Unsqueeze(x, a)", ops={"RESHAPE"}, inits={"a": i64(1)}),
    Row("Unsqueeze", 11, "y = Unsqueeze <axes=[0]> (x)", ops={"RESHAPE"}, id="opset11"),
    Row("Concat", 13, "y = Concat <axis=1> (x, z)", inputs="float[1,3,8,8] x, float[1,2,8,8] z", ops={"CONCATENATION"}),
    Row("Concat", 13, "c = Conv(x, w)\nd = Conv(x, v)\ny = Concat <axis=1> (c, d)",
        ops={"TRANSPOSE": 2, "CONV_2D": 2, "CONCATENATION": 1},
        inits={"w": f32(4, 3, 1, 1), "v": f32(2, 3, 1, 1)}, id="channels_after_conv"),
    Row("Split", 13, "a, b = Split <axis=1> (x, s)\ny = Add(a, b)", inputs="float[1,4,8,8] x", ops={"SPLIT", "ADD"},
        inits={"s": i64(2, 2)}, id="equal"),
    Row("Split", 13, "a, b = Split <axis=3> (x, s)\ny = Concat <axis=3> (b, a)", ops={"SPLIT_V", "CONCATENATION"},
        inits={"s": i64(3, 5)}, id="sizes"),
    Row("Split", 11, "a, b = Split <axis=1, split=[1,2]> (x)\ny = Concat <axis=1> (b, a)",
        ops={"SPLIT_V", "CONCATENATION"}, id="opset11"),
    Row("Split", 18, "a, b = Split <axis=2, num_outputs=2> (x)\ny = Sub(a, b)", ops={"SPLIT", "SUB"}, id="num_outputs"),
    Row("Slice", 13, "y = Slice(x, s, e, a)", ops={"SLICE"}, inits={"s": i64(1, 2), "e": i64(3, 7), "a": i64(1, 3)}),
    Row("Slice", 13, "y = Slice(x, s, e, a, t)", ops={"STRIDED_SLICE"},
        inits={"s": i64(0, -1), "e": i64(8, -100), "a": i64(2, 3), "t": i64(2, -1)}, id="steps_negative"),
    Row("Slice", 9, "y = Slice <starts=[1], ends=[6], axes=[2]> (x)", ops={"SLICE"}, id="opset9_attrs"),
    Row("Gather", 13, "y = Gather <axis=1> (x, i)", ops={"GATHER"}, inits={"i": i64(2, 0)}),
    Row("Gather", 13, "y = Gather <axis=3> (x, i)", ops={"GATHER", "RESHAPE"}, inits={"i": np.asarray(-1, np.int64)},
        id="scalar_negative"),
    Row("Pad", 13, "y = Pad(x, p)", ops={"PAD"}, inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}),
    Row("Pad", 13, "y = Pad(x, p, v)", ops={"PADV2"}, inits={"p": i64(0, 0, 1, 1, 0, 0, 1, 1), "v": np.float32(-2)},
        id="value"),
    Row("Pad", 13, "y = Pad <mode=\"reflect\"> (x, p)", ops={"MIRROR_PAD"}, inits={"p": i64(0, 0, 1, 1, 0, 0, 1, 1)},
        id="reflect"),
    Row("Pad", 18, "y = Pad(x, p, v, a)", ops={"PAD"}, inits={"p": i64(1, 2, 3, 0), "v": np.float32(0), "a": i64(2, 3)},
        id="axes"),
    Row("Pad", 2, "y = Pad <pads=[0,0,1,1,0,0,1,1]> (x)", ops={"PAD"}, id="opset2_attrs"),
    Row("Identity", 13, "i = Identity(x)\ny = Relu(i)", ops={"RELU"}),
    Row("Dropout", 13, "d = Dropout(x)\ny = Relu(d)", ops={"RELU"}),
    Row("Dropout", 11, "d = Dropout(x)\ny = Relu(d)", ops={"RELU"}, id="opset11"),
    # --- resize
    Row("Resize", 13, "y = Resize <mode=\"nearest\", coordinate_transformation_mode=\"asymmetric\", "
        "nearest_mode=\"floor\"> (x, , s)", ops={"TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"},
        inits={"s": np.asarray([1, 1, 2, 2], np.float32)}, id="nearest_torchscript"),
    Row("Resize", 13, "y = Resize <mode=\"linear\", coordinate_transformation_mode=\"half_pixel\"> (x, , s)",
        ops={"TRANSPOSE", "RESIZE_BILINEAR"}, inits={"s": np.asarray([1, 1, 2, 2], np.float32)}, id="bilinear_half_pixel"),
    Row("Resize", 13, "y = Resize <mode=\"linear\", coordinate_transformation_mode=\"align_corners\"> (x, , , z)",
        ops={"TRANSPOSE", "RESIZE_BILINEAR"}, inits={"z": i64(1, 3, 13, 11)}, id="bilinear_align_corners_sizes"),
    Row("Resize", 19, "y = Resize <mode=\"nearest\"> (x, , s)", ops={"TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"},
        inits={"s": np.asarray([1, 1, 2, 2], np.float32)}, id="opset19_defaults"),
    Row("Resize", 18, "y = Resize <mode=\"linear\", axes=[2,3], coordinate_transformation_mode=\"pytorch_half_pixel\"> "
        "(x, , s)", ops={"TRANSPOSE", "RESIZE_BILINEAR"}, inits={"s": np.asarray([2, 2], np.float32)}, id="opset18_axes"),
    Row("Resize", 10, "y = Resize <mode=\"nearest\"> (x, s)", ops={"TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"},
        inits={"s": np.asarray([1, 1, 2, 3], np.float32)}, id="opset10"),
    Row("Upsample", 9, "y = Upsample <mode=\"nearest\"> (x, s)", ops={"TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"},
        inits={"s": np.asarray([1, 1, 2, 2], np.float32)}),
    Row("Upsample", 7, "y = Upsample <mode=\"linear\", scales=[1.0,1.0,2.0,2.0]> (x)",
        ops={"TRANSPOSE", "RESIZE_BILINEAR"}, id="opset7"),
    # --- what QDQ folding leaves of QuantizeLinear/DequantizeLinear (uint8, zero point 0: negatives clamp to 0)
    Row("QuantizeLinear", 13, QDQ, ops={"QUANTIZE", "DEQUANTIZE"}, inits={"s": np.float32(0.05)}),
    Row("QuantizeLinear", 19, QDQ, ops={"QUANTIZE", "DEQUANTIZE"}, inits={"s": np.float32(0.05)}),
    Row("QuantizeLinear", 21, QDQ, ops={"QUANTIZE", "DEQUANTIZE"}, inits={"s": np.float32(0.05)}),
    Row("DequantizeLinear", 13, QDQ, ops={"QUANTIZE", "DEQUANTIZE"}, inits={"s": np.float32(0.02)}),
    Row("DequantizeLinear", 21, QDQ, ops={"QUANTIZE", "DEQUANTIZE"}, inits={"s": np.float32(0.02)}),
    # --- compile-time values and the compiler's own layout ops
    Row("Constant", 13, "k = Constant <value=float[1] {2.5}> ()\ny = Mul(x, k)", ops={"MUL"}),
    Row("Shape", 13, "s = Shape(x)\nk = ConstantOfShape <value=float[1] {1.0}> (s)\ny = Add(x, k)", ops={"ADD"},
        id="folded_with_constantofshape"),
    Row("Relayout", 13, "c = Conv(x, w)\ny = Flatten(c)", ops={"TRANSPOSE": 2, "CONV_2D": 1, "RESHAPE": 1},
        inits={"w": f32(4, 3, 1, 1)}, id="flatten_needs_onnx_order"),
    Row("PhysicalReshape", 13, "c = Conv(x, w)\nf = Flatten(c)\ny = Gemm <transB=1> (f, d, e)",
        ops={"TRANSPOSE": 1, "CONV_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1},
        inits={"w": f32(4, 3, 1, 1), "d": f32(5, 256), "e": f32(5)}, id="flatten_into_dense"),
    Row("PhysicalReshape", 13, "g = Gemm(z, d, e)\nr = Reshape(g, s)\ny = Conv(r, w)", inputs="float[1,8] z",
        ops={"FULLY_CONNECTED": 1, "RESHAPE": 1, "CONV_2D": 1, "TRANSPOSE": 1},
        inits={"d": f32(8, 48), "e": f32(48), "s": i64(1, 3, 4, 4), "w": f32(2, 3, 1, 1)}, id="dense_into_nhwc"),
    # --- ops the fusion passes create: ShuffleNet's channel shuffle, torch's decomposed adaptive average pooling
    Row("ChannelShuffle", 13, "c = Conv(x, w)\nr = Reshape(c, s5)\nt = Transpose <perm=[0,2,1,3,4]> (r)\n"
        "u = Reshape(t, s4)\ny = Conv(u, v)", ops={"TRANSPOSE": 3, "RESHAPE": 2, "CONV_2D": 2},
        inits={"w": f32(6, 3, 1, 1), "s5": i64(1, 2, 3, 8, 8), "s4": i64(1, 6, 8, 8), "v": f32(4, 6, 1, 1)},
        id="fused_in_nhwc"),
    Row("AdaptiveAveragePool", 18, "t = Transpose <perm=[2,3,0,1]> (x)\ng = GatherND(t, i)\n"
        "u = Transpose <perm=[4,5,0,1,2,3]> (g)\ny = ReduceMean <keepdims=0> (u, a)", inputs="float[1,3,10,10] x",
        ops={"TRANSPOSE": 2, "RESHAPE": 2, "BATCH_MATMUL": 1}, inits={"i": windows_10_to_4(), "a": i64(-3, -1)},
        id="torch_gathernd_10_to_4"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def test_every_registered_lowering_has_a_row():
    """Rows come from every test module of this folder that defines ROWS of `Row`s (imported here, so the test
    passes alone and in any order); the compiler-internal ops are exercised through the passes that create them."""
    import importlib
    from pathlib import Path

    from edgekit.converters.tflite.registry import load_all, lookup
    registry = load_all()
    rows = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        rows += [r for r in getattr(module, "ROWS", []) if hasattr(r, "op") and hasattr(r, "opset")]
    covered = {(r.op, lookup(r.op, r.opset).since) for r in rows if lookup(r.op, r.opset)}
    missing = [(op, v.since) for (domain, op), versions in registry.items() if domain == ""
               for v in versions if (op, v.since) not in covered]
    assert not missing, f"lowerings without a test row: {missing}"

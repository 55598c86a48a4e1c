"""Reductions, arg-max/min and normalisations: compile, run, compare with ONNX Runtime; and what they refuse."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from test_ops import Row, f32, i64
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

X3 = "float[2,3,4] x"
CONV = {"w": f32(4, 3, 1, 1)}  # a 1x1 conv in front puts the reduced value in NHWC
ROWS = [
    # --- builtin reductions, axes as attribute (opset 13) and as input (opset 18)
    Row("ReduceMin", 13, "y = ReduceMin <axes=[1], keepdims=0> (x)", X3, ops={"REDUCE_MIN"}),
    Row("ReduceMin", 18, "y = ReduceMin <keepdims=1> (x, a)", X3, ops={"REDUCE_MIN"}, inits={"a": i64(-1, 0)},
        id="axes_input"),
    Row("ReduceMin", 20, "y = ReduceMin <keepdims=0> (x, a)", "bool[2,3,4] x", ops={"REDUCE_ALL"},
        inits={"a": i64(1)}, outputs="bool y", id="bool_is_all"),
    Row("ReduceMax", 20, "y = ReduceMax <keepdims=1> (x, a)", "bool[2,3,4] x", ops={"REDUCE_ANY"},
        inits={"a": i64(2)}, outputs="bool y", id="bool_is_any"),
    Row("ReduceMax", 18, "y = ReduceMax (x)", "int32[2,3,4] x", ops={"REDUCE_MAX"}, outputs="int32 y",
        id="int32_all_axes"),
    Row("ReduceMin", 18, "y = ReduceMin <keepdims=0> (x, a)", "uint8[2,3,4] x", ops={"CAST": 2, "REDUCE_MIN": 1},
        inits={"a": i64(1)}, outputs="uint8 y", id="uint8_widened"),
    Row("ReduceProd", 13, "y = ReduceProd <axes=[2]> (x)", X3, ops={"REDUCE_PROD"}),
    Row("ReduceProd", 18, "y = ReduceProd <keepdims=0> (x, a)", "int32[2,3,4] x", ops={"REDUCE_PROD"},
        inits={"a": i64(0, 2)}, outputs="int32 y", id="int32"),
    Row("ReduceSum", 13, "r = Relu(x)\ny = ReduceSum <noop_with_empty_axes=1> (r, a)", X3, ops={"RELU": 1},
        inits={"a": np.zeros(0, np.int64)}, outputs="float[2,3,4] y", id="noop_is_identity"),
    Row("ReduceMean", 18, "y = ReduceMean <keepdims=0> (x)", X3, ops={"MEAN"}, id="no_axes_is_all"),
    # --- compositions
    Row("ReduceL1", 13, "y = ReduceL1 <axes=[1]> (x)", X3, ops={"ABS": 1, "SUM": 1}),
    Row("ReduceL1", 18, "y = ReduceL1 <noop_with_empty_axes=1> (x)", X3, ops={"ABS": 1}, id="noop_is_abs"),
    Row("ReduceL2", 13, "y = ReduceL2 <axes=[0,2], keepdims=0> (x)", X3, ops={"MUL": 1, "SUM": 1, "SQRT": 1}),
    Row("ReduceL2", 18, "c = Conv(x, w)\ny = ReduceL2 <keepdims=0> (c, a)", ops={"CONV_2D", "TRANSPOSE", "MUL",
        "SUM", "SQRT"}, inits={**CONV, "a": i64(1)}, id="nhwc_channels"),
    Row("ReduceSumSquare", 13, "y = ReduceSumSquare <axes=[-1]> (x)", X3, ops={"MUL": 1, "SUM": 1}),
    Row("ReduceSumSquare", 18, "y = ReduceSumSquare <keepdims=0> (x, a)", X3, ops={"MUL": 1, "SUM": 1},
        inits={"a": i64(1)}, id="axes_input"),
    Row("ReduceLogSum", 13, "e = Exp(x)\ny = ReduceLogSum <axes=[1]> (e)", X3, ops={"EXP", "SUM", "LOG"}),
    Row("ReduceLogSum", 18, "e = Exp(x)\ny = ReduceLogSum <keepdims=0> (e, a)", X3, ops={"EXP", "SUM", "LOG"},
        inits={"a": i64(-1)}, id="axes_input"),
    Row("ReduceLogSumExp", 13, "y = ReduceLogSumExp <axes=[1]> (x)", "float[2,3,4] x",
        ops={"REDUCE_MAX", "MAXIMUM", "MINIMUM", "SUB", "EXP", "SUM", "LOG", "ADD"}),
    Row("ReduceLogSumExp", 18, "c = Conv(x, w)\ny = ReduceLogSumExp <keepdims=0> (c, a)",
        ops={"CONV_2D", "TRANSPOSE", "REDUCE_MAX", "MAXIMUM", "MINIMUM", "SUB", "EXP", "SUM", "LOG", "ADD",
             "SQUEEZE"}, inits={**CONV, "a": i64(1, 3)}, id="nhwc_squeezed"),
]

ROWS += [
    # --- arg-max/min (int64 indices are int32 in the TFLite model), Hardmax
    Row("ArgMax", 11, "y = ArgMax <axis=1> (x)", X3, ops={"ARG_MAX", "EXPAND_DIMS"}, outputs="int64 y"),
    Row("ArgMax", 13, "c = Conv(x, w)\ny = ArgMax <axis=1, keepdims=0> (c)", ops={"CONV_2D", "TRANSPOSE", "ARG_MAX"},
        inits=CONV, outputs="int64 y", id="nhwc_channels"),
    Row("ArgMax", 13, "r = Round(x)\ny = ArgMax <axis=-1, select_last_index=1> (r)", X3,
        ops={"ROUND", "REVERSE_V2", "ARG_MAX", "SUB", "EXPAND_DIMS"}, outputs="int64 y", id="select_last_ties"),
    Row("ArgMin", 11, "y = ArgMin <axis=0, keepdims=0> (x)", X3, ops={"ARG_MIN"}, outputs="int64 y"),
    Row("ArgMin", 13, "y = ArgMin <axis=2, keepdims=0, select_last_index=1> (x)", "int32[2,3,4] x",
        ops={"REVERSE_V2", "ARG_MIN", "SUB"}, outputs="int64 y", id="int32_select_last"),
    Row("Hardmax", 11, "y = Hardmax <axis=1> (x)", X3, ops={"RESHAPE": 2, "ARG_MAX": 1, "ONE_HOT": 1}),
    Row("Hardmax", 13, "c = Conv(x, w)\ny = Hardmax <axis=1> (c)", ops={"CONV_2D", "TRANSPOSE", "ARG_MAX", "ONE_HOT"},
        inits=CONV, id="nhwc_channels"),
]

PARAMS = {"s": f32(3), "b": f32(3)}
ROWS += [
    # --- averages and normalisations (a conv in front: statistics taken in NHWC, no transposes around them)
    Row("Mean", 13, "y = Mean(x, z, c)", "float[2,3,4] x, float[3,1] z", ops={"ADD": 2, "MUL": 1},
        inits={"c": f32(4)}, id="broadcast_three"),
    Row("InstanceNormalization", 6, "y = InstanceNormalization <epsilon=0.01> (x, s, b)", inits=PARAMS),
    Row("InstanceNormalization", 13, "c = Conv(x, w)\ny = InstanceNormalization (c, s, b)",
        ops={"CONV_2D": 1, "TRANSPOSE": 2, "MEAN": 2, "SUB": 1, "MUL": 3, "ADD": 2, "RSQRT": 1},
        inits={"w": f32(3, 3, 1, 1), **PARAMS}, id="nhwc"),
    Row("InstanceNormalization", 13, "y = InstanceNormalization (x, s, b)", "float[1,3,8,8] x, float[3] s, float[3] b",
        ops={"MEAN", "SUB", "MUL", "ADD", "RSQRT", "RESHAPE"}, id="run_time_scale"),
    Row("GroupNormalization", 21, "c = Conv(x, w)\ny = GroupNormalization <num_groups=2, epsilon=0.01> (c, s, b)",
        ops={"CONV_2D", "TRANSPOSE", "RESHAPE", "MEAN", "SUB", "MUL", "ADD", "RSQRT"},
        inits={"w": f32(6, 3, 1, 1), "s": f32(6), "b": f32(6)}, outputs="float[1,6,8,8] y", id="per_channel_nhwc"),
    Row("MeanVarianceNormalization", 13, "y = MeanVarianceNormalization <axes=[0,2,3]> (x)",
        ops={"MEAN", "SUB", "MUL", "SQRT", "ADD", "DIV"}),
    Row("LpNormalization", 1, "y = LpNormalization <axis=1, p=1> (x)", X3,
        ops={"ABS", "SUM", "EQUAL", "DIV", "SELECT_V2"}),
    Row("LpNormalization", 22, "c = Conv(x, w)\ny = LpNormalization <axis=1> (c)",
        ops={"CONV_2D", "TRANSPOSE", "MUL", "SUM", "SQRT", "EQUAL", "DIV", "SELECT_V2"}, inits=CONV, id="l2_nhwc"),
    Row("CumProd", 26, "y = CumProd(x, a)", "float[2,7,3] x", ops={"SLICE": 3, "PADV2": 3, "MUL": 3},
        inits={"a": i64(1)}),
    Row("CumProd", 26, "y = CumProd <exclusive=1, reverse=1> (x, a)", "int32[2,3,5] x",
        ops={"REVERSE_V2": 2, "SLICE": 4, "PADV2": 4, "MUL": 3}, inits={"a": i64(-1)}, outputs="int32 y",
        id="int32_exclusive_reverse"),
    Row("RMSNormalization", 23, "y = RMSNormalization <axis=-2> (x, s)", X3, ops={"MUL": 3, "MEAN": 1, "ADD": 1,
        "RSQRT": 1}, inits={"s": f32(3, 4)}),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def test_log_sum_exp_does_not_overflow():
    """exp(100) overflows float32; the max-shift keeps the result finite and exact."""
    text = model_text("y = ReduceLogSumExp <axes=[1]> (x)", X3, "float y", 13)
    assert_converts(text, {"x": f32(2, 3, 4) * 10 + 100})


def refusal(body, inputs=X3, opset=18, outputs="float y", **inits) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(model_text(body, inputs, outputs, opset, **inits)))
    return str(info.value)


def test_run_time_axes_are_refused():
    assert "axes input 'a' is computed at run time" in refusal("y = ReduceL1 (x, a)", X3 + ", int64[1] a",
                                                                   outputs="float[1,1,1] y")


def test_lp_normalization_of_a_zero_slice_is_zero():
    text = model_text("y = LpNormalization <axis=1> (x)", X3, "float y", 13)
    x = f32(2, 3, 4)
    x[1, :, 2] = 0
    assert_converts(text, {"x": x})


def test_lp_normalization_other_p_is_refused():
    assert "p=3" in refusal("y = LpNormalization <p=3> (x)", opset=13)


def test_statistics_in_another_precision_are_refused():
    assert "stash_type=11" in refusal("y = RMSNormalization <stash_type=11> (x, s)", opset=23, s=f32(4))

"""Indexing, gather/scatter and data movement: one row per op version (ONNX Runtime vs LiteRT), run-time indices,
and the cases the compiler refuses with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError
from test_ops import Row, f32, i64

X3 = "float[2,3,4] x"
ELEMENT_INDEX = np.asarray([[[0, -1, 2, 1]] * 3, [[2, 1, 0, -3]] * 3], np.int64)  # [2,3,4] along axis 2
ROWS = [
    # --- gathers
    Row("GatherElements", 13, "y = GatherElements <axis=2> (x, i)", inputs=X3, ops={"GATHER_ND"},
        inits={"i": ELEMENT_INDEX}, id="negative_indices"),
    Row("GatherElements", 11, "y = GatherElements <axis=0> (x, i)", inputs=X3, ops={"GATHER_ND"},
        inits={"i": i64(1, 0, 1).reshape(1, 3, 1)}, id="smaller_index_shape"),
    Row("GatherND", 11, "y = GatherND(x, i)", inputs=X3, ops={"GATHER_ND"}, inits={"i": i64(1, -1, 0, 2).reshape(2, 2)}),
    Row("GatherND", 13, "y = GatherND <batch_dims=1> (x, i)", inputs=X3, ops={"GATHER_ND"},
        inits={"i": i64(2, -1).reshape(2, 1, 1)}, id="batch_dims"),
    # --- scatters (constant indices: SCATTER_ND into zeros, then a constant mask selects)
    Row("ScatterND", 11, "y = ScatterND(x, i, u)", inputs=X3, ops={"SCATTER_ND", "SELECT_V2"},
        inits={"i": i64(1, 0).reshape(2, 1), "u": f32(2, 3, 4)}, id="rows"),
    Row("ScatterND", 18, "y = ScatterND <reduction=\"add\"> (x, i, u)", inputs=X3, ops={"SCATTER_ND", "ADD"},
        inits={"i": i64(0, 1, 0, 1).reshape(2, 2), "u": f32(2, 4)}, id="add_duplicates"),
    Row("ScatterND", 16, "y = ScatterND <reduction=\"max\"> (x, i, u)", inputs=X3,
        ops={"SCATTER_ND": 2, "MAXIMUM": 2, "SELECT_V2": 2, "GATHER": 2},
        inits={"i": i64(0, 1, 1, 2, 0, 1).reshape(3, 2), "u": f32(3, 4)}, id="max_duplicates_in_rounds"),
    Row("ScatterND", 18, "y = ScatterND <reduction=\"mul\"> (x, i, u)", inputs=X3,
        ops={"SCATTER_ND", "MUL", "SELECT_V2"}, inits={"i": i64(1, 2, 0, 0).reshape(2, 2), "u": f32(2, 4)}, id="mul"),
    Row("ScatterElements", 13, "y = ScatterElements <axis=1> (x, i, u)", inputs=X3, ops={"SCATTER_ND", "SELECT_V2"},
        inits={"i": i64(2, 0, -1, 1, 0, 2, 1, 0).reshape(2, 1, 4), "u": f32(2, 1, 4)}),
    Row("ScatterElements", 18, "y = ScatterElements <axis=2, reduction=\"min\"> (x, i, u)", inputs=X3,
        ops={"SCATTER_ND", "MINIMUM", "SELECT_V2", "GATHER", "RESHAPE"},
        inits={"i": i64(0, 0, 3, 1, 1, 1).reshape(2, 1, 3), "u": f32(2, 1, 3)}, id="min_duplicates"),
    Row("ScatterElements", 18, "y = ScatterElements <axis=2> (x, i, u)", inputs=X3, ops={"SCATTER_ND", "SELECT_V2",
                                                                                         "GATHER", "RESHAPE"},
        inits={"i": i64(0, 0, 1, 1).reshape(2, 1, 2), "u": f32(2, 1, 2)}, id="none_last_write_wins"),
    Row("Scatter", 10, "y = Scatter <axis=1> (x, i, u)", inputs=X3, ops={"SCATTER_ND", "SELECT_V2"},
        inits={"i": i64(1, 2, 0, 1).reshape(1, 1, 4), "u": f32(1, 1, 4)}, id="opset10"),
    # --- TopK: largest along the last axis; smallest as the largest of -x; another axis moved last
    Row("TopK", 11, "y, j = TopK(x, k)\nf = Cast <to=1> (j)", inputs=X3, outputs="float y, float f",
        ops={"TOPK_V2", "CAST"}, inits={"k": i64(2)}),
    Row("TopK", 11, "y, j = TopK <axis=1, largest=0> (x, k)\nf = Cast <to=1> (j)", inputs=X3,
        outputs="float y, float f", ops={"TOPK_V2", "CAST", "NEG", "TRANSPOSE"}, inits={"k": i64(2)},
        id="smallest_axis1"),
    Row("TopK", 10, "y, j = TopK(x, k)\nf = Cast <to=1> (j)", inputs=X3, outputs="float y, float f",
        ops={"TOPK_V2", "CAST"}, inits={"k": i64(3)}, id="opset10"),
    Row("TopK", 9, "y, j = TopK <k=1> (x)\nf = Cast <to=1> (j)", inputs=X3, outputs="float y, float f",
        ops={"TOPK_V2", "CAST"}, id="opset9"),
    # --- masks and constants
    Row("OneHot", 11, "i = Cast <to=7> (x)\ny = OneHot <axis=1> (i, d, v)", inputs="float[2,3] x",
        ops={"CAST", "LESS", "ADD", "SELECT_V2", "ONE_HOT"}, inits={"d": i64(4), "v": np.asarray([0, 3], np.float32)}),
    Row("Trilu", 14, "y = Trilu(x, k)", inputs=X3, ops={"SELECT_V2"}, inits={"k": i64(1)}, id="upper"),
    Row("Trilu", 14, "y = Trilu <upper=0> (x)", inputs=X3, ops={"SELECT_V2"}, id="lower"),
    Row("EyeLike", 9, "e = EyeLike <k=1> (x)\ny = Add(x, e)", inputs="float[3,4] x", ops={"ADD"}),
    # ONNX shape inference leaves Compress's output size open: these models state it
    Row("Compress", 11, "c = Cast <to=9> (ci)\ny = Compress <axis=-1> (x, c)", inputs=X3, ops={"GATHER"},
        inits={"ci": i64(1, 0, 1, 1)}, outputs="float[2,3,3] y"),
    Row("Compress", 11, "c = Cast <to=9> (ci)\ny = Compress(x, c)", inputs=X3, ops={"RESHAPE", "GATHER"},
        inits={"ci": i64(0, 1, 1, 0, 1)}, outputs="float[3] y", id="flattened"),
    Row("ReverseSequence", 10, "y = ReverseSequence <batch_axis=0, time_axis=1> (x, s)", inputs="float[3,4,2] x",
        ops={"REVERSE_SEQUENCE"}, inits={"s": i64(4, 1, 3)}),
    # --- blocks of pixels (NHWC builtins, transposed at the model's edges)
    Row("DepthToSpace", 13, "y = DepthToSpace <blocksize=2> (x)", inputs="float[1,8,3,3] x",
        ops={"TRANSPOSE", "DEPTH_TO_SPACE"}, id="dcr"),
    Row("DepthToSpace", 13, "y = DepthToSpace <blocksize=2, mode=\"CRD\"> (x)", inputs="float[1,8,3,3] x",
        ops={"TRANSPOSE", "GATHER", "DEPTH_TO_SPACE"}, id="crd"),
    Row("DepthToSpace", 9, "y = DepthToSpace <blocksize=2> (x)", inputs="float[1,8,3,3] x",
        ops={"TRANSPOSE", "DEPTH_TO_SPACE"}, id="opset9"),
    Row("SpaceToDepth", 13, "y = SpaceToDepth <blocksize=2> (x)", ops={"TRANSPOSE", "SPACE_TO_DEPTH"}),
    Row("SpaceToDepth", 28, "y = SpaceToDepth <blocksize=2, mode=\"CRD\"> (x)", inputs="float[1,3,4,6] x",
        ops={"TRANSPOSE", "SPACE_TO_DEPTH", "GATHER"}, id="crd"),
    # --- Pad modes without a builtin: gather clamped (edge) or modular (wrap) rows; negative pads crop
    Row("Pad", 18, "y = Pad <mode=\"edge\"> (x, p)", ops={"GATHER"}, inits={"p": i64(0, 0, 2, -1, 0, 0, 1, 3)},
        id="edge_and_crop"),
    Row("Pad", 19, "y = Pad <mode=\"wrap\"> (x, p, , a)", ops={"GATHER"}, inits={"p": i64(3, 1, 2, 9), "a": i64(2, 3)},
        id="wrap_beyond_size"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


# -- run-time indices and shapes: integers arrive as float inputs cast in the graph (random int64 inputs would be
# out of range, and the compiled model may take integers narrower than ONNX's int64)

INDEX = np.asarray([[[0, 2], [1, -1], [-3, 0]], [[2, 2], [0, 1], [1, -2]]], np.float32)  # [2,3,2]


def run_time(body: str, inputs: str, outputs: str = "float y", opset: int = 18, **inits) -> str:
    return model_text("i = Cast <to=7> (fi)\n" + body, inputs, outputs, opset, **inits)


def test_gather_elements_with_run_time_indices_wraps_negatives():
    text = run_time("y = GatherElements <axis=2> (x, i)", "float[2,3,4] x, float[2,3,2] fi")
    assert_converts(text, {"x": f32(2, 3, 4), "fi": INDEX}, expect_ops={"CAST", "FLOOR_MOD", "RESHAPE",
                                                                       "CONCATENATION", "GATHER_ND"})


def test_gather_nd_with_run_time_indices_and_batch_dims():
    text = run_time("y = GatherND <batch_dims=1> (x, i)", "float[2,3,4] x, float[2,3,2] fi")
    assert_converts(text, {"x": f32(2, 3, 4), "fi": INDEX}, expect_ops={"CAST", "FLOOR_MOD", "CONCATENATION",
                                                                       "GATHER_ND"})


def test_scatter_nd_with_run_time_indices_selects_the_reached_positions():
    text = run_time("y = ScatterND(x, i, u)", "float[2,3,4] x, float[2,2] fi, float[2,4] u")
    assert_converts(text, {"x": f32(2, 3, 4), "fi": np.asarray([[1, 2], [0, -1]], np.float32), "u": f32(2, 4)},
                    expect_ops={"CAST", "FLOOR_MOD", "SCATTER_ND", "GREATER", "SELECT_V2"})


def test_scatter_elements_add_with_run_time_indices_sums_duplicates():
    text = run_time("y = ScatterElements <axis=2, reduction=\"add\"> (x, i, u)",
                    "float[2,3,4] x, float[2,3,2] fi, float[2,3,2] u")
    assert_converts(text, {"x": f32(2, 3, 4), "fi": INDEX, "u": f32(2, 3, 2)},
                    expect_ops={"CAST", "FLOOR_MOD", "RESHAPE", "CONCATENATION", "SCATTER_ND", "ADD"})


def test_one_hot_wraps_negative_indices_and_leaves_out_of_range_ones_off():
    text = run_time("y = OneHot(i, d, v)", "float[5] fi", opset=11, d=i64(3), v=np.asarray([-1, 2], np.float32))
    assert_converts(text, {"fi": np.asarray([0, -1, 2, 7, -5], np.float32)},
                    expect_ops={"CAST", "LESS", "ADD", "SELECT_V2", "ONE_HOT"})


def test_reverse_sequence_with_run_time_lengths():
    text = run_time("y = ReverseSequence <batch_axis=1, time_axis=0> (x, i)", "float[4,3,2] x, float[3] fi",
                    opset=10)
    assert_converts(text, {"x": f32(4, 3, 2), "fi": np.asarray([1, 4, 2], np.float32)},
                    expect_ops={"CAST", "REVERSE_SEQUENCE"})


@pytest.mark.parametrize("body, output, shape", [
    ("y = Reshape(x, i)", "float[6,4] y", [6, 4]),
    ("y = Unsqueeze(x, i)", "float[1,2,3,1,4] y", [0, 3]),
])
def test_run_time_shape_inputs_reshape_to_the_inferred_output_shape(body, output, shape):
    model = as_model(run_time(body, "float[2,3,4] x, float[2] fi", output, opset=13))
    compiled = assert_converts(model, {"x": f32(2, 3, 4), "fi": np.asarray(shape, np.float32)})
    assert compiled.op_histogram.get("RESHAPE") == 1


# -- refusals name their reason

Y = "float y"


@pytest.mark.parametrize("body, inputs, outputs, inits, reason", [  # outputs with shapes reach the lowering
    ("y = ScatterND <reduction=\"mul\"> (x, i, u)", "float[2,3] x, int64[2,1] i, float[2,3] u", Y, {},
     "run-time indices with reduction='mul'"),
    ("y = Slice(x, s, e)", "float[2,3] x", Y, {"s": i64(5), "e": i64(9)}, "the slice of axis 0 is empty"),
    ("y = Trilu(x)", "float[0,3] x", Y, {}, "TFLite tensors cannot have a zero-size dimension"),
    ("c = Cast <to=9> (ci)\ny = Compress <axis=0> (x, c)", "float[2,3] x", Y, {"ci": i64(0, 0)}, "keeps nothing"),
    ("y = GatherElements(x, i)", "float[2,3] x", Y, {"i": i64(0, 2).reshape(1, 2)}, "indices out of range"),
    ("y = OneHot(i, d, v)", "int64[2] i, int64 d", "float[2,4] y", {"v": np.asarray([0, 1], np.float32)},
     "depth input 'd' is computed at run time"),
    ("y, j = TopK(x, k)", "float[2,3] x, int64[1] k", "float[2,2] y, int64[2,2] j", {},
     "K input 'k' is computed at run time"),
])
def test_refusals_name_the_reason(body, inputs, outputs, inits, reason):
    with pytest.raises(UnsupportedModelError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        compile_onnx(as_model(model_text(body, inputs, outputs, opset=18, **inits)))

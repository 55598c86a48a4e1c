"""Integer products, dynamic quantization, center crop/pad, affine grids and the losses: one row per op version
(ONNX Runtime vs LiteRT, exact for integers) and the refused cases."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from _differential import as_model, assert_converts, model_text
from test_ops import Row, f32
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

U8 = np.random.default_rng(7)
W_U8 = "w = Constant <value = uint8[2,1,2,2] {1,2,3,4,5,6,7,8}> ()\n"
INTEGER_PRODUCT = {"CAST", "SUB", "BATCH_MATMUL"}
DQL = {"REDUCE_MAX", "REDUCE_MIN", "MAXIMUM", "MINIMUM", "SUB", "EQUAL", "SELECT_V2", "DIV", "NEG", "ROUND", "ADD",
       "CAST", "SQUEEZE"}
NLL_WEIGHTED = {"RESHAPE", "EQUAL", "SELECT_V2", "SUM", "MUL", "DIV", "NEG"}
LOG_SOFTMAX = {"REDUCE_MAX", "SUB", "EXP", "SUM", "LOG"}

ROWS = [
    Row("MatMulInteger", 10, "y = MatMulInteger(a, bm, za, zb)",
        inputs="uint8[4,3] a, uint8[3,2] bm, uint8 za, uint8 zb", outputs="int32 y", ops=INTEGER_PRODUCT),
    Row("MatMulInteger", 10, "bm = Constant <value = int8[3,2] {-128,127,3,-4,5,0}> ()\n"
        "zb = Constant <value = int8[2] {3,-5}> ()\ny = MatMulInteger(a, bm, za, zb)",
        inputs="int8[2,4,3] a, int8 za", outputs="int32 y", ops={"CAST", "SUB", "FULLY_CONNECTED"}, id="const_b"),
    Row("ConvInteger", 10, W_U8 + "zx = Constant <value = uint8 {1}> ()\n"
        "y = ConvInteger <pads=[1,1,1,1]> (x, w, zx)", inputs="uint8[1,1,5,5] x", outputs="int32 y",
        ops={"RESHAPE", "TRANSPOSE", "CAST", "SUB", "PAD", "CONV_2D"}),
    Row("ConvInteger", 10, "y = ConvInteger(x, w, zx, zw)", inputs="int8[1,2,5,5] x, int8[3,2,3,3] w, int8 zx, "
        "int8 zw", outputs="int32 y", ops={"TRANSPOSE", "CAST", "SUB", "CONV_2D"}, id="computed_weights"),
    Row("DynamicQuantizeLinear", 11, "y, s, z = DynamicQuantizeLinear(x)", inputs="float[2,6] x",
        outputs="uint8 y, float s, uint8 z", ops=DQL),
    Row("CenterCropPad", 18, "y = CenterCropPad(x, s)", inputs="float[9,4,3] x", ops={"SLICE", "PAD"},
        inits={"s": np.asarray([4, 7, 3], np.int64)}),
    Row("CenterCropPad", 18, "y = CenterCropPad <axes=[-2]> (x, s)", inputs="float[2,9,3] x", ops={"SLICE": 1},
        inits={"s": np.asarray([6], np.int64)}, id="crop_axis"),
    Row("AffineGrid", 20, "y = AffineGrid(theta, s)", inputs="float[2,2,3] theta", ops={"BATCH_MATMUL", "RESHAPE"},
        inits={"s": np.asarray([2, 3, 5, 6], np.int64)}),
    Row("AffineGrid", 20, "y = AffineGrid <align_corners=1> (theta, s)", inputs="float[2,3,4] theta",
        ops={"BATCH_MATMUL", "RESHAPE"}, inits={"s": np.asarray([2, 3, 4, 5, 6], np.int64)}, id="3d_align_corners"),
    Row("NegativeLogLikelihoodLoss", 13, "y = NegativeLogLikelihoodLoss <reduction=\"none\"> (x, t)",
        inputs="float[3,5] x, int64[3] t", ops={"RESHAPE", "EQUAL", "SELECT_V2", "SUM", "NEG"}),
    Row("NegativeLogLikelihoodLoss", 22, "y = NegativeLogLikelihoodLoss <ignore_index=1> (x, t, w)",
        inputs="float[2,5,3,4] x, int64[2,3,4] t, float[5] w", ops=NLL_WEIGHTED, id="weight_ii_mean"),
    Row("SoftmaxCrossEntropyLoss", 13, "y, p = SoftmaxCrossEntropyLoss <reduction=\"sum\", ignore_index=2> (x, t)",
        inputs="float[2,5,3,2,2,2] x, int64[2,3,2,2,2] t", outputs="float y, float p",
        ops=LOG_SOFTMAX | {"RESHAPE", "EQUAL", "SELECT_V2", "SUM", "NEG"}, id="rank6_log_prob"),
    Row("SoftmaxCrossEntropyLoss", 13, "y = SoftmaxCrossEntropyLoss(x, t)", inputs="float[3,5] x, int64[3] t",
        ops=LOG_SOFTMAX | {"RESHAPE", "EQUAL", "SELECT_V2", "SUM", "NEG", "MEAN"}, id="mean"),
]


def _inputs(row):
    model = as_model(row.text())
    feeds = {}
    for inp in model.graph.input:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if inp.name == "t":  # class indices, some of them the ignore_index of the rows that have one
            feeds[inp.name] = U8.integers(0, 5, dims).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            feeds[inp.name] = U8.integers(info.min, info.max, dims, endpoint=True).astype(dtype)
        else:
            feeds[inp.name] = f32(*dims, scale=3)
    return feeds


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    exact = row.op in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "CenterCropPad")
    assert_converts(row.text(), inputs=_inputs(row), expect_ops=row.ops, nhwc_io=row.nhwc_io,
                    **(dict(atol=0, rtol=0) if exact else {}))


def _refusal(body, inputs, outputs, opset, **inits) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(model_text(body, inputs, outputs, opset, **inits)))
    return str(info.value)


def test_integer_products_that_could_round_in_float32_are_refused():
    """1100 products of int8 by int8 may reach 1100 * 128 * 128 > 2^24: float32 would round."""
    message = _refusal("y = MatMulInteger(a, bm)", "int8[2,1100] a, int8[1100,2] bm", "int32 y", 10)
    assert "past 2^24" in message


def test_grouped_conv_integer_is_refused():
    message = _refusal("w = Constant <value = uint8[2,1,1,1] {1,2}> ()\ny = ConvInteger <group=2> (x, w)",
                       "uint8[1,2,3,3] x", "int32 y", 10)
    assert "group=2" in message


def test_affine_grid_size_must_be_known_at_compile_time():
    """A run-time size leaves the grid's shape unknown: refused before the lowering is reached."""
    message = _refusal("y = AffineGrid(theta, s)", "float[2,2,3] theta, int64[4] s", "float y", 20)
    assert "AffineGrid" in message and "dynamic non-batch dimension" in message


def test_nll_over_minus_infinity_elsewhere_in_the_row_stays_finite():
    """Log-probabilities of -inf at classes that are not the target: the pick adds zeros, never 0 * -inf."""
    x = np.full((2, 4), -np.inf, np.float32)
    x[0, 1], x[1, 3] = -0.5, -2.0
    text = model_text("y = NegativeLogLikelihoodLoss <reduction=\"none\"> (x, t)", "float[2,4] x, int64[2] t",
                      "float y", 13)
    assert_converts(text, inputs={"x": x, "t": np.asarray([1, 3], np.int64)})


def test_unknown_reduction_is_refused():
    message = _refusal("y = NegativeLogLikelihoodLoss <reduction=\"max\"> (x, t)", "float[3,5] x, int64[3] t",
                       "float y", 13)
    assert "reduction='max'" in message


def _run_litert(model, feeds: dict) -> list:
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=compile_onnx(model).to_bytes(), num_threads=1)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feeds[d["name"]])
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def test_matmul_integer_takes_computed_zero_points_per_row_and_column():
    """ONNX Runtime only takes scalar zero points: checked against numpy, exactly."""
    text = model_text("y = MatMulInteger(a, bm, za, zb)", "uint8[4,3] a, uint8[3,2] bm, uint8[4] za, uint8[2] zb",
                      "int32 y", 10)
    feeds = {name: U8.integers(0, 256, shape).astype(np.uint8)
             for name, shape in (("a", (4, 3)), ("bm", (3, 2)), ("za", (4,)), ("zb", (2,)))}
    want = (feeds["a"].astype(np.int32) - feeds["za"][:, None]) @ (feeds["bm"].astype(np.int32) - feeds["zb"][None])
    got, = _run_litert(as_model(text), feeds)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("x", [[0.0, 0.5, 1.5, 2.5, -0.5, 255.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                               [-3.0, -1.5, -0.25, -2.0, -1.0, -0.5]], ids=["halves", "zeros", "negative"])
def test_dynamic_quantize_linear_rounds_halves_to_even_like_onnx(x):
    """x / scale lands on halves (scale 1); an all-zero input takes the scale 1/255; an all-negative one zero point
    255."""
    text = model_text("y, s, z = DynamicQuantizeLinear(x)", "float[6] x", "uint8 y, float s, uint8 z", 11)
    assert_converts(text, {"x": np.asarray(x, np.float32)}, evaluator="onnx.reference", atol=0, rtol=0)


@pytest.mark.parametrize("precision", [None, "dynamic"])
def test_large_integer_weights_stay_exact_under_dynamic_range_quantization(precision):
    """Constant weights big enough for the dynamic_range pass stay out of its reach: integers, not int8 rounded."""
    rng = np.random.default_rng(5)
    w = rng.integers(0, 256, (16, 8, 3, 3)).astype(np.uint8)
    bm = rng.integers(-128, 128, (64, 32)).astype(np.int8)
    x = rng.integers(0, 256, (1, 8, 6, 6)).astype(np.uint8)
    a = rng.integers(-128, 128, (3, 64)).astype(np.int8)
    from onnx import helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"]),
         helper.make_node("MatMulInteger", ["a", "bm"], ["z"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, x.shape),
         helper.make_tensor_value_info("a", onnx.TensorProto.INT8, a.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [1, 16, 4, 4]),
         helper.make_tensor_value_info("z", onnx.TensorProto.INT32, [3, 32])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bm, "bm"),
         numpy_helper.from_array(np.uint8(3), "zx"), numpy_helper.from_array(np.uint8(200), "zw")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    compiled = compile_onnx(model, precision=precision) if precision else compile_onnx(model)
    assert_converts(model, {"x": x, "a": a}, compiled=compiled, evaluator="onnx.reference", atol=0, rtol=0)

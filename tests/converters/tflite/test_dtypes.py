"""Integer dtypes and casts: run-time int64 computed as int32, narrow integer arithmetic widened and cast back (ONNX's
wrap-around kept), Pow with mixed operand types, Cast/CastLike between TFLite's dtypes, bitwise ops; and the
refusals where LiteRT has no kernel (uint64, float8, run-time left shifts)."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from test_ops import Row, i64
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError


def pair(dtype: str, shape: str = "[2,3]") -> str:
    return f"{dtype}{shape} a, {dtype}{shape} c"


ROWS = [
    # --- narrow integers: LiteRT's int8/uint8/int16 ADD/SUB/MUL are quantized kernels; widened to int32, cast back
    Row("Add", 14, "y = Add(a, c)", pair("int8"), {"CAST": 3, "ADD": 1}, outputs="int8 y", id="int8_wraps"),
    Row("Sub", 14, "y = Sub(a, c)", pair("uint8"), {"CAST": 3, "SUB": 1}, outputs="uint8 y", id="uint8_wraps"),
    Row("Mul", 14, "y = Mul(a, c)", pair("int16"), {"CAST": 3, "MUL": 1}, outputs="int16 y", id="int16"),
    Row("Mul", 14, "y = Mul(a, c)", pair("uint32"), {"CAST": 3, "MUL": 1}, outputs="uint32 y", id="uint32_via_int64"),
    Row("Div", 14, "y = Div(a, c)", "int32[2,3] a", {"DIV"}, inits={"c": np.asarray([[3]], np.int32)},
        outputs="int32 y", id="int32_truncates"),
    # --- int64 masks: computed as int32, the model's int64 input becomes int32
    Row("Sub", 14, "y = Sub(one, m)", "int64[2,6] m", {"SUB"}, inits={"one": i64(1)}, outputs="int64 y",
        id="int64_mask"),
    Row("Equal", 13, "e = Equal(m, zero)\ny = Where(e, lo, x)", "int64[2,6] m, float[2,6] x", {"EQUAL", "SELECT_V2"},
        inits={"zero": i64(0), "lo": np.asarray(-1e4, np.float32)}, id="int64_mask_where"),
    # --- Pow: LiteRT's POW needs equal operand types
    Row("Pow", 15, "y = Pow(x, e)", "float[2,3] x", {"POW"}, inits={"e": i64(3)}, id="float_base_int64_exponent"),
    Row("Pow", 15, "y = Pow(x, e)", "float[2,3] x, int32[2,3] e", {"CAST", "POW"}, id="float_base_runtime_int"),
    Row("Pow", 15, "y = Pow(a, e)", "int32[2,3] a", {"POW"}, inits={"e": np.asarray([2, 3, 1], np.int32)},
        outputs="int32 y", id="int32"),
    # --- casts
    Row("Cast", 13, "y = Cast <to=6> (x)", "float[2,3] x", {"CAST"}, outputs="int32 y", id="float_to_int32"),
    Row("Cast", 13, "y = Cast <to=1> (a)", "uint8[2,3] a", {"CAST"}, id="uint8_to_float"),
    Row("Cast", 13, "y = Cast <to=3> (a)", "int32[2,3] a", {"CAST"}, outputs="int8 y", id="int32_to_int8_wraps"),
    Row("CastLike", 15, "y = CastLike(x, t)", "float[2,3] x, int32[1] t", {"CAST"}, outputs="int32 y"),
    # --- logic and bits
    Row("Xor", 7, "y = Xor(p, q)", "bool[2,3] p, bool[2,3] q", {"NOT_EQUAL"}, outputs="bool y"),
    Row("BitwiseXor", 18, "y = BitwiseXor(a, c)", pair("int32"), {"BITWISE_XOR"}, outputs="int32 y"),
    Row("BitwiseNot", 18, "y = BitwiseNot(a)", "uint8[2,3] a", {"BITWISE_XOR"}, outputs="uint8 y"),
    Row("BitShift", 11, "y = BitShift <direction=\"RIGHT\"> (a, s)", "uint8[2,3] a, uint8[2,3] s", {"RIGHT_SHIFT"},
        outputs="uint8 y", id="right_runtime_unsigned"),
]
# inputs where the seeded ones (convert's: uint8 over [0, 256)) leave the op's domain: ONNX does not define a shift by
# the bit width or more, and LiteRT's RIGHT_SHIFT and ONNX Runtime differ there
FEEDS = {"right_runtime_unsigned": {"a": np.random.default_rng(0).integers(0, 256, (2, 3), dtype=np.uint8),
                                    "s": np.asarray([[0, 1, 3], [5, 7, 2]], np.uint8)}}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), FEEDS.get(row.id), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def shifts_left(dtype: str, amounts) -> str:
    values = ",".join(str(int(a)) for a in amounts)
    return (f'<ir_version: 8, opset_import: ["" : 13]>\ng ({dtype}[3] a) => ({dtype}[3] y) '
            f'<{dtype}[3] s = {{{values}}}> {{\ny = BitShift <direction="LEFT"> (a, s)\n}}')


def test_left_shift_drops_the_bits_shifted_out():
    inputs = {"a": np.asarray([1, 200, 255], np.uint8)}
    compiled = assert_converts(shifts_left("uint8", [1, 2, 7]), inputs, expect_ops={"CAST", "MUL"})
    assert compiled is not None


def test_an_int64_input_is_int32_in_the_model_and_the_notes_say_so():
    compiled = compile_onnx(as_model(ROWS[5].text()))
    assert compiled.graph.tensors["m"].dtype == np.int32
    assert any("int64 inputs/outputs" in n for n in compiled.quantization["notes"])
    assert compiled.quantization["int64_as_int32"] == ["m", "y"]


def test_the_runtime_casts_int64_ids_that_fit_and_refuses_ones_that_do_not(tmp_path):
    from edgekit.errors import UsageError
    from edgekit.runtimes import load
    path = tmp_path / "mask.tflite"
    path.write_bytes(compile_onnx(as_model(ROWS[5].text())).to_bytes())
    session = load(str(path))
    out = session.run({"m": np.asarray([[0, 1, 1, 0, 1, 1]] * 2, np.int64)})
    assert np.array_equal(next(iter(out.values())), [[1, 0, 0, 1, 0, 0]] * 2)
    with pytest.raises(UsageError, match="cannot hold"):
        session.run({"m": np.full((2, 6), 2 ** 40, np.int64)})


def refused(text: str) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(text))
    return str(info.value)


def test_uint64_arithmetic_is_refused_naming_the_dtype():
    assert "uint64" in refused(model_text("y = Add(a, c)", pair("uint64"), "uint64 y"))


def test_a_float8_cast_is_refused_naming_the_dtype():
    assert "float8_e4m3fn" in refused(model_text("y = Cast <to=17> (x)", "float[2,3] x", "float8e4m3fn y", opset=19))


def test_a_left_shift_by_a_run_time_amount_is_refused():
    assert "LEFT_SHIFT" in refused(model_text('y = BitShift <direction="LEFT"> (a, c)', pair("uint8"),
                                              "uint8[2,3] y", opset=13))


def test_shift_amounts_out_of_range_are_refused():
    assert "outside [0, 8)" in refused(shifts_left("uint8", [1, 8, 0]))


def test_a_signed_shift_by_a_run_time_amount_is_refused():
    assert "signed int8" in refused(model_text('y = BitShift <direction="RIGHT"> (a, c)', pair("int8"),
                                               "int8[2,3] y", opset=13))

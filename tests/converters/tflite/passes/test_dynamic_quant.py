"""passes/dynamic_quant.py: ONNX dynamic quantization (DynamicQuantizeLinear + MatMulInteger + rescaling Muls, as
onnxruntime's quantize_dynamic writes it) becomes one dense op with int8 weights on LiteRT's hybrid kernel, and an
int8 embedding table read by Gather + DequantizeLinear is dequantized at compile time; the notes say both."""
from __future__ import annotations

import numpy as np

from _pass_case import assert_converts, model_text

R = np.random.default_rng(13)
DENSE = ("xq, xs, xz = DynamicQuantizeLinear(x)\n m = MatMulInteger(xq, wq, xz, wz)\n f = Cast <to=1> (m)\n"
         " s = Mul(xs, ws)\n y = Mul(f, s)")
WEIGHTS = {"wq": R.integers(-127, 128, (64, 32)).astype(np.int8), "wz": np.array(0, np.int8),
           "ws": np.array(0.02, np.float32)}
DENSE_NOTE = "dynamic quantization: 1 MatMulInteger/ConvInteger pattern(s) became hybrid int8 ops"


def test_matmul_integer_with_its_rescaling_is_one_hybrid_fully_connected():
    compiled = assert_converts(model_text(DENSE, "float[2,64] x", "float y", **WEIGHTS), atol=2e-2, rtol=2e-2)
    g = compiled.graph
    assert [op.code for op in g.ops] == ["FULLY_CONNECTED"]
    assert g.tensors[g.ops[0].inputs[1]].dtype == np.int8
    assert compiled.quantization == {"mode": "dynamic", "notes": [DENSE_NOTE]}


def test_an_int8_embedding_table_is_dequantized_at_compile_time():
    body = "g = Gather <axis=0> (tq, ids)\n x = DequantizeLinear(g, ts, tz)\n " + DENSE.replace("\n", "\n ")
    text = model_text(body, "int32[2] ids", "float y", tq=R.integers(-127, 128, (10, 64)).astype(np.int8),
                      ts=np.array(0.05, np.float32), tz=np.array(0, np.int8), **WEIGHTS)
    ids = np.array([3, 9], np.int32)
    compiled = assert_converts(text, inputs={"ids": ids}, atol=2e-2, rtol=2e-2)
    g = compiled.graph
    assert [op.code for op in g.ops] == ["FLOOR_MOD", "GATHER", "FULLY_CONNECTED"]  # FLOOR_MOD: ONNX negative ids
    assert g.tensors[g.ops[1].inputs[0]].dtype == np.float32
    assert compiled.quantization["notes"] == [
        "Gather_0 (Gather): the int8 embedding table is dequantized at compile time (float32)", DENSE_NOTE]


def test_data_movement_between_the_dynamic_quantization_and_the_integer_op_moves_to_the_float_side(tmp_path):
    """onnxruntime's quantize_dynamic quantizes a Transpose too (SegFormer): the uint8 tensor is transposed and then
    read by MatMulInteger; the transpose now runs on the float input and the MatMul is one hybrid op."""
    import contextlib
    import io

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from _pass_case import as_model
    # x is quantized once for the first MatMul; the Transpose then reads the quantized tensor
    text = model_text("a = MatMul(x, w1)\n t = Transpose <perm=[0,2,1]> (x)\n b = MatMul(t, w2)", "float[1,16,8] x",
                      "float a, float b", w1=R.standard_normal((8, 32)).astype(np.float32),
                      w2=R.standard_normal((16, 32)).astype(np.float32))
    src, dst = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(as_model(text), str(src))
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    model = onnx.load(str(dst))
    producer = {o: n for n in model.graph.node for o in n.output}
    transpose = next(n for n in model.graph.node if n.op_type == "Transpose")
    assert producer[transpose.input[0]].op_type == "DynamicQuantizeLinear"  # the pattern this test is about
    compiled = assert_converts(model, atol=5e-2, rtol=5e-2)
    g = compiled.graph
    dense = [op for op in g.ops if op.code in ("FULLY_CONNECTED", "BATCH_MATMUL")]
    assert len(dense) == 2 and all(g.tensors[op.inputs[0]].dtype == np.float32 for op in dense)
    assert not {"QUANTIZE", "DEQUANTIZE", "CAST"} & set(compiled.op_histogram), compiled.op_histogram


def test_a_quantize_dequantize_round_trip_around_data_movement_runs_in_float():
    """SegFormer's dynamic model transposes the uint8 tensor and dequantizes it again with the same parameters: in
    TFLite the transpose runs on the float tensor and the round trip (at most half a step) is dropped, with a note."""
    body = DENSE + "\n t = Transpose <perm=[1,0]> (xq)\n z = DequantizeLinear(t, xs, xz)"
    compiled = assert_converts(model_text(body, "float[2,64] x", "float y, float z", **WEIGHTS), atol=2e-2, rtol=2e-2)
    g = compiled.graph
    assert sorted(op.code for op in g.ops) == ["FULLY_CONNECTED", "TRANSPOSE"]
    transpose = next(op for op in g.ops if op.code == "TRANSPOSE")
    assert g.tensors[transpose.inputs[0]].dtype == np.float32
    assert any("round trip around Transpose is dropped" in n for n in compiled.quantization["notes"])

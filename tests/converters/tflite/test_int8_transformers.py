"""INT8 for transformer patterns (issue 13, item 4): attention-mask fills stay float, constants folded after the QDQ
pass keep int8, int8 ADD/SUB whose rescaling LiteRT cannot form are refused at compile time (they aborted LiteRT),
and the float islands a failed INT8 validation measures are chosen upstream of float ops."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from _qdq import ort_qdq
from edgekit.converters.tflite import compile_onnx, kernel_check
from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor
from edgekit.int8_islands import LOCAL_STEPS, OpError, culprits

FINFO_MIN = float(np.finfo(np.float32).min)


def _add_graph(scales) -> tuple[TflGraph, Graph]:
    g = TflGraph()
    for name, scale in zip("aby", scales):
        g.tensors[name] = TflTensor(name, [2, 3], np.dtype(np.int8), quant={"scale": [scale], "zero_point": [0]})
    g.ops, g.inputs, g.outputs = [TflOp("ADD", ["a", "b"], ["y"], origin="node_1")], ["a", "b"], ["y"]
    return g, Graph({}, [Node("Add", "node_1", [], [])], [], [], 13)


def test_int8_add_with_a_mask_fill_output_scale_is_refused_not_left_to_abort_litert():
    """BERT's scores + finfo.min mask quantized as is: LiteRT computes 2^20 * 1.33e36 in float32 (inf) and aborts."""
    found = kernel_check.check(*_add_graph([0.0016, 1.33e36, 1.33e36]))
    assert len(found) == 1 and found[0].node == "node_1"
    assert "cannot rescale" in found[0].reason and "overflows float32" in found[0].reason


def test_int8_add_with_ordinary_scales_passes_and_a_zero_scale_does_not():
    assert not kernel_check.check(*_add_graph([0.02, 0.5, 0.4]))
    assert "positive finite" in kernel_check.check(*_add_graph([0.0, 0.5, 0.4]))[0].reason


def _masked_attention() -> onnx.ModelProto:
    """softmax(x·W + (1 - mask)·finfo.min)·x, the HF extended-attention-mask arithmetic."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["s"]),
             helper.make_node("Cast", ["mask"], ["mf"], to=onnx.TensorProto.FLOAT),
             helper.make_node("Sub", ["one", "mf"], ["inv"]),
             helper.make_node("Mul", ["inv", "fill"], ["m"]),
             helper.make_node("Unsqueeze", ["m", "ax"], ["m3"]),
             helper.make_node("Add", ["s", "m3"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((8, 6)).astype(np.float32) * 0.5, "W"),
             numpy_helper.from_array(np.ones(1, np.float32), "one"),
             numpy_helper.from_array(np.full(1, FINFO_MIN, np.float32), "fill"),
             numpy_helper.from_array(np.asarray([1], np.int64), "ax")]
    graph = helper.make_graph(nodes, "masked", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 6, 8]),
                                                helper.make_tensor_value_info("mask", onnx.TensorProto.INT64, [1, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 6, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_mask_fills_stay_float_and_the_int8_model_validates(tmp_path):
    from edgekit.convert import convert
    from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
    src, qdq = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(_masked_attention(), str(src))
    rng = np.random.default_rng(1)
    mask = np.ones((16, 6), np.int64)
    mask[::2, 4:] = 0
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 6, 8)).astype(np.float32), mask=mask)
    result = quantize(src, qdq, calibration=Calibration(str(tmp_path / "calib.npz")), speed=SpeedPolicy("off"),
                      gate=AccuracyGate(max_eval=8), force=True)
    fills = [n for n in result.notes if "attention-mask fills" in n]
    assert fills and "sm" in result.plan.float_tensors
    model = onnx.load(str(qdq))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scales = [inits[n.input[1]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert scales and max(float(np.max(s)) for s in scales) < 1e30  # nothing is quantized at a fill's scale
    converted = convert(qdq, tmp_path / "int8.tflite")
    assert converted.passed and converted.mode == "int8"


def test_a_quantized_constant_folded_after_the_qdq_pass_stays_int8(tmp_path):
    """Gather(table, constant ids) → Q (uint8) only becomes constant in constant folding: it keeps the int8 type
    and shifted zero point the QDQ pass gave it (BERT's position embeddings: an int8 + uint8 ADD before)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Range", ["start", "limit", "delta"], ["ids"]),
             helper.make_node("Gather", ["table", "ids"], ["pos"]),
             helper.make_node("Add", ["x", "pos"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "table"),
             numpy_helper.from_array(np.asarray(0, np.int64), "start"),
             numpy_helper.from_array(np.asarray(6, np.int64), "limit"),
             numpy_helper.from_array(np.asarray(1, np.int64), "delta")]
    graph = helper.make_graph(nodes, "pos", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [6, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [6, 4])], inits)
    model = ort_qdq(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path)
    compiled = compile_onnx(model)
    adds = [op for op in compiled.graph.ops if op.code == "ADD"]
    assert adds and {compiled.graph.tensors[n].dtype.name for op in adds for n in op.inputs} == {"int8"}


def test_islands_are_chosen_upstream_of_an_op_already_in_float():
    """A float LayerNorm amplifies its int8 input's rounding: the int8 residual Add feeding it is chosen, through
    other float ops, and ops adding no error of their own are not."""
    rows = [OpError("ln", "LayerNormalization", "ln_q", 16, 15, ("res",)),
            OpError("soft", "Softmax", "soft_q", 13, 12, ("mm",)),
            OpError("res", "Add", "res_q", 1, 0, ("fc", "gelu")),
            OpError("gelu", "Mul", "gelu_q", 2, 1, ("fc2",)),
            OpError("fc", "MatMul", "fc_q", 1, 0.5, ()),
            OpError("fc2", "MatMul", "fc2_q", 0, 0, ()),
            OpError("mm", "MatMul", "mm_q", 1, LOCAL_STEPS - 1, ())]
    picked = [r.node for r in culprits(rows, floats={"ln", "gelu"})]
    assert picked[:1] == ["res"] and "soft" in picked
    assert "ln" not in picked and "gelu" not in picked and "fc2" not in picked and "mm" not in picked

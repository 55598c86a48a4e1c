"""The INT8 reference's noise floor (edgekit.int8_sensitivity): how far ONNX Runtime's QDQ model moves when its float
inputs move by 1e-5. A model whose output is its own rounding residual moves by many output steps; a plain QDQ copy
by at most one; a model fed only token ids has no imperceptible input move and reports nothing."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgekit.int8_sensitivity import reference_sensitivity

N, STEP = 4096, 0.01


def _qdq_model(residual: bool, out_step: float, dtype=TensorProto.FLOAT) -> bytes:
    """x → Q/DQ at STEP → y, or y = Q/DQ(x) − x (the rounding residual, ±STEP/2) at `out_step`."""
    inits = [numpy_helper.from_array(np.float32(STEP), "s"), numpy_helper.from_array(np.int8(0), "z"),
             numpy_helper.from_array(np.float32(out_step), "so")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
    last = "xd"
    if residual:
        nodes.append(helper.make_node("Sub", ["xd", "x"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "so", "z"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "so", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", dtype, [1, N])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()


def test_a_model_that_outputs_its_rounding_residual_moves_by_many_steps():
    out_step = STEP / 2 / 127
    moved = reference_sensitivity(_qdq_model(True, out_step), {"x": [1, N]}, {"y": out_step}, seeds=(0, 1))
    assert moved["y"] > 100  # one value crossing an input rounding boundary jumps the residual by STEP: 254 steps


def test_a_plain_qdq_copy_moves_by_at_most_one_step():
    moved = reference_sensitivity(_qdq_model(False, STEP), {"x": [1, N]}, {"y": STEP}, seeds=(0, 1))
    assert 0 < moved["y"] <= 1.0 + 1e-6  # a few values cross a boundary (not zero: the perturbation is real)


def test_a_model_without_float_inputs_reports_nothing():
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)], "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])]), opset_imports=[helper.make_opsetid("", 19)])
    assert reference_sensitivity(model.SerializeToString(), {"ids": [1, 8]}, {"y": 1.0}) == {}

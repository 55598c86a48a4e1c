"""INT8: a Tanh whose calibrated output step is far finer than the 1/128 LiteRT's int8 TANH writes is computed in
float (edgekit.int8_islands.fixed_step_losses), known from the QDQ model without measuring: its int8 kernel would
round every output below 1/256 to zero (seen on a deep random-weight tanh chain, whose outputs were all zeros)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.convert import convert
from edgekit.int8_islands import LOCAL_STEPS, fixed_step_losses

WIDTH = 16


def qdq_tanh_chain(gains) -> onnx.ModelProto:
    """x -> per layer: MatMul(DQ(w_q)) -> Q/DQ -> Tanh -> Q/DQ, scales calibrated (max |v| / 127) on one seeded input;
    gains set how much each layer shrinks its input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, WIDTH)).astype(np.float32)
    nodes, inits = [], []

    def qdq(name, value):
        scale = np.float32(max(float(np.abs(value).max()), 1e-30) / 127)
        inits.extend([numpy_helper.from_array(scale, f"{name}_s"), numpy_helper.from_array(np.int8(0), f"{name}_z")])
        nodes.extend([helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
                      helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"])])
        return f"{name}_dq"

    h, value = qdq("x", x), x
    for i, gain in enumerate(gains):
        w = (rng.standard_normal((WIDTH, WIDTH)) * gain / np.sqrt(WIDTH)).astype(np.float32)
        w_scale = np.float32(np.abs(w).max() / 127)
        inits += [numpy_helper.from_array(np.round(w / w_scale).astype(np.int8), f"w{i}_q"),
                  numpy_helper.from_array(w_scale, f"w{i}_s"), numpy_helper.from_array(np.int8(0), f"w{i}_z")]
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_s", f"w{i}_z"], [f"w{i}"]),
                  helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"], name=f"matmul_{i}")]
        value = value @ w
        h = qdq(f"m{i}", value)
        nodes.append(helper.make_node("Tanh", [h], [f"t{i}"], name=f"tanh_{i}"))
        value = np.tanh(value)
        h = qdq(f"t{i}", value)
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_only_tanh_outputs_far_below_the_fixed_step_are_listed():
    found = fixed_step_losses(qdq_tanh_chain([3.0, 0.01, 0.01]).SerializeToString())
    assert [r.node for r in found] == ["tanh_1", "tanh_2"]  # tanh_0's outputs fill its range (step ~1/127)
    assert all(r.local_steps > LOCAL_STEPS for r in found)  # up to 1/256 of rounding, in calibrated steps
    assert found[1].local_steps > 10 * found[0].local_steps  # the smaller the outputs, the more steps lost


def test_a_chain_of_small_tanh_outputs_converts_in_int8_with_them_in_float(tmp_path):
    path = tmp_path / "chain.onnx"
    onnx.save(qdq_tanh_chain([3.0, 0.05, 0.05]), str(path))
    result = convert(path, tmp_path / "chain.tflite")
    assert result.passed and result.mode == "int8" and result.outputs[0]["cosine"] > 0.99
    fixed = [r["node"] for r in result.quantization["measured_islands"] if r.get("fixed_step")]
    assert fixed == ["tanh_1", "tanh_2"]
    assert any("fixed output step" in n for n in result.quantization["notes"])


def test_the_measurement_aligns_a_tensor_whose_equal_dims_leave_several_layouts():
    """A [1, C, 16, 16] map compiled NHWC matches two transposes of the ONNX shape; both are candidates, and the
    measurement keeps the one that agrees (before, such tensors — SegFormer's output — were not measured at all)."""
    from edgekit.int8_islands import _onnx_layouts
    onnx_layout = np.arange(2 * 16 * 16, dtype=np.int8).reshape(1, 2, 16, 16)
    candidates = _onnx_layouts(onnx_layout.transpose(0, 2, 3, 1), onnx_layout.shape)
    assert len(candidates) == 2 and any(np.array_equal(c, onnx_layout) for c in candidates)

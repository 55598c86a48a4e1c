"""Validation of a model whose outputs are near zero (30 tanh layers of tiny weights: outputs of ~1e-14) is judged
against the scale of the float activations each output is computed from: the right model passes, a wrong one fails
(against the plain atol=1e-5 any answer of that size passed, zeros included), and the notes say how it was judged."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.activation_scale import activation_scales, computing_inputs, scaled_atol
from edgekit.convert import convert
from edgekit.errors import ValidationError

LAYERS, WIDTH = 30, 16


def deep_tanh(gain: float = 0.35, last_sign: float = 1.0, final_sub: bool = False) -> onnx.ModelProto:
    """x -> 30 × tanh(x @ W) with W scaled so activations shrink by `gain` per layer; optionally y = h - 0.999 h."""
    rng = np.random.default_rng(0)
    nodes, inits, h = [], [], "x"
    for i in range(LAYERS):
        w = rng.standard_normal((WIDTH, WIDTH)) * gain / np.sqrt(WIDTH) * (last_sign if i == LAYERS - 1 else 1.0)
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"], name=f"matmul_{i}"),
                  helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"tanh_{i}")]
        h = f"t{i}"
    if final_sub:
        inits.append(numpy_helper.from_array(np.float32(0.999), "k"))
        nodes += [helper.make_node("Mul", ["x", "k"], ["xk"], name="scaled"),
                  helper.make_node("Sub", ["x", "xk"], ["y"], name="cancel")]
    else:
        nodes.append(helper.make_node("Identity", [h], ["y"], name="out"))
    graph = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def save(model, path):
    onnx.save(model, str(path))
    return path


def test_the_activation_scale_of_a_shrinking_chain_is_its_output_scale(tmp_path):
    path = save(deep_tanh(), tmp_path / "deep.onnx")
    scale = activation_scales(path, {"x": [1, WIDTH]})["y"]
    assert 1e-16 < scale < 1e-10  # the chain shrinks the N(0, 1) input by ~0.35 per layer
    assert computing_inputs(onnx.load(str(path)), "y") == ["m29"]  # through the Identity to the last Tanh


def test_a_cancelling_output_is_judged_at_the_scale_of_what_cancelled(tmp_path):
    path = save(deep_tanh(final_sub=True), tmp_path / "sub.onnx")
    scale = activation_scales(path, {"x": [1, WIDTH]})["y"]
    assert scale > 1.0  # x itself (N(0, 1)), not x - 0.999 x
    assert scaled_atol(1e-5, scale) == 1e-5  # never larger than the gate's own atol


def test_a_near_zero_output_converts_and_the_notes_say_how_it_was_judged(tmp_path):
    path = save(deep_tanh(), tmp_path / "deep.onnx")
    result = convert(path, tmp_path / "deep.tflite")
    out = result.outputs[0]
    assert result.passed and out["scale"] < 1e-10 and out["cosine"] > 0.999
    assert out["atol"] < 1e-5 * 1e-9  # held to the size of its own numbers
    assert result.quantization["activation_scales"]["y"] == pytest.approx(out["scale"], rel=0.5)
    assert any("judged against the float model's activations" in n for n in result.quantization["notes"])


def test_a_wrong_near_zero_output_fails_validation(tmp_path, monkeypatch):
    """A compiler that got the last layer's sign wrong gives cosine -1 at 1e-14: within atol=1e-5 of the right
    answer, so the plain gate passed it. Judged at the activation scale it fails, and the message says why."""
    from edgekit.converters import tflite
    right = save(deep_tanh(), tmp_path / "deep.onnx")
    wrong = save(deep_tanh(last_sign=-1.0), tmp_path / "wrong.onnx")
    real_compile = tflite.compile_onnx
    monkeypatch.setattr(tflite, "compile_onnx", lambda _path, *a, **k: real_compile(str(wrong), *a, **k))
    with pytest.raises(ValidationError) as info:
        convert(right, tmp_path / "out.tflite")
    assert "activation scale" in str(info.value) and not (tmp_path / "out.tflite").exists()
    assert info.value.result.outputs[0]["cosine"] < -0.99

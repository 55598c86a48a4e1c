"""Unsupported models fail once, listing every bad node; the CLI exits 4 and writes nothing."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from _differential import as_model, model_text
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

BAD = model_text(
    "a = RandomUniformLike(x)\n"
    "b = Gemm <transA=1> (a, w)\n"
    "c = RandomNormalLike(b)\n"
    "y = Gemm <transB=1, bogus=3> (c, v)",
    "float[4,4] x", "float y", opset=13,
    w=np.ones((4, 4), np.float32), v=np.ones((2, 4), np.float32))


def bad_model():
    """RandomUniformLike and RandomNormalLike (random sampling) have no lowering, a Gemm has transA=1."""
    return as_model(BAD.replace(", bogus=3", ""))


def test_unknown_attribute_is_an_invalid_model():
    """An attribute the ONNX spec does not define is a malformed file (exit 3), refused before any pass."""
    from edgekit.errors import InvalidModelError
    model = bad_model()
    model.graph.node[3].attribute.append(onnx.helper.make_attribute("bogus", 3))
    with pytest.raises(InvalidModelError, match="Unrecognized attribute: bogus"):
        compile_onnx(model)


def test_all_problems_are_listed_once():
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(bad_model())
    err = info.value
    ops = sorted(p["op_type"] for p in err.problems)
    assert ops == ["RandomNormalLike", "RandomUniformLike"], err.problems  # static checks stop before lowering (transA=1)
    assert "RandomUniformLike" in str(err) and "RandomNormalLike" in str(err)
    assert err.exit_code == 4


def test_lowering_problems_are_collected_too():
    model = as_model(model_text("a = Gemm <transA=1> (x, w)\ny = Gemm <transA=1> (a, w)", "float[4,4] x", "float y",
                                opset=13, w=np.ones((4, 4), np.float32)))
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(model)
    assert len(info.value.problems) == 2 and all("transA" in p["reason"] for p in info.value.problems)


def test_dynamic_non_batch_dim_needs_input_shape():
    """Hardmax's lowering needs its width (ONE_HOT depth); Relu would now run at any size (test_dynamic_shapes)."""
    model = as_model(model_text("y = Hardmax(x)", "float[1,N] x", "float y", opset=13))
    with pytest.raises(UnsupportedModelError, match="--input-shape"):
        compile_onnx(model)
    assert compile_onnx(model, input_shapes={"x": (1, 5)}).input_shapes == {"x": [1, 5]}


def test_cli_exit_code_4_and_no_output(tmp_path):
    from edgekit.cli import main
    src, dst = tmp_path / "bad.onnx", tmp_path / "bad.tflite"
    onnx.save(bad_model(), src)
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(dst)])
    assert result.exit_code == 4, result.output
    assert "RandomUniformLike" in result.output and "RandomNormalLike" in result.output
    assert not dst.exists() and list(tmp_path.iterdir()) == [src]


def test_cli_converts_validates_and_writes_metadata(tmp_path):
    from edgekit import runtimes
    from edgekit.cli import main
    from edgekit.converters.tflite import describe_tflite
    rng = np.random.default_rng(0)
    src, dst, js = tmp_path / "m.onnx", tmp_path / "m.tflite", tmp_path / "r.json"
    onnx.save(as_model(model_text("c = Conv <pads=[1,1,1,1]> (x, w)\ny = Relu(c)", "float[1,3,8,8] x", "float y",
                                  opset=13, w=rng.standard_normal((4, 3, 3, 3)).astype(np.float32))), src)
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(dst), "--nhwc-io", "--json", str(js)])
    assert result.exit_code == 0, result.output
    info = describe_tflite(dst)
    assert info["ops"] == {"CONV_2D": 1} and info["inputs"][0]["layout"] == "NHWC"
    assert info["metadata"]["edgekit.source"] == "m.onnx"
    with runtimes.load(dst) as session:
        assert session.inputs[0].layout == "NHWC" and session.inputs[0].shape == (1, 8, 8, 3)
    import json
    assert json.loads(js.read_text())["passed"] is True


def test_validation_failure_exit_5_writes_nothing(tmp_path):
    from edgekit.cli import main
    src, dst = tmp_path / "m.onnx", tmp_path / "m.tflite"
    onnx.save(as_model(model_text("y = Exp(x)", "float[1,64] x", "float y", opset=13)), src)
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(dst), "--atol", "0", "--rtol", "0"])
    if result.exit_code == 0:  # bit-exact on this machine: nothing to fail on
        pytest.skip("LiteRT's EXP matched ONNX Runtime bit for bit")
    assert result.exit_code == 5 and not dst.exists()


def test_constant_output_is_refused_clearly():
    """An output that folds to a constant has no TFLite form: a clear exit 4, not a crash."""
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]),
         helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [2], [1, 2]))], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    with pytest.raises(UnsupportedModelError, match="output 'c' does not depend on any input"):
        compile_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def test_dynamic_sequence_names_the_ops_that_need_it_static(tmp_path):
    from edgekit.converters.torch_export import export
    export("zoo:gru", tmp_path / "gru.onnx", dynamic_axes=["x:1=seq"])
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(onnx.load(tmp_path / "gru.onnx"))
    text = str(info.value)
    assert "'x' dim 1 (seq)" in text and "(GRU: unrolled over the sequence length)" in text
    assert "--input-shape" in text

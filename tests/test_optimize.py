"""edgekit optimize: portable cleanup checked against the input model; ORT fusions only on request."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import UsageError
from edgekit.optimize import optimize


def conv_bn_model(batch="N") -> onnx.ModelProto:
    """x → Conv → BatchNormalization → Relu → Dropout → Identity → Conv → y, plus a constant subgraph."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")
    bn = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in (
        (rng.random(8) + 0.5, "scale"), (rng.standard_normal(8) * 0.1, "bias"),
        (rng.standard_normal(8) * 0.1, "mean"), (rng.random(8) + 0.5, "var"))]
    two = numpy_helper.from_array(np.array([2.0], np.float32), "two")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["b1"], name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Dropout", ["r1"], ["d1"], name="drop"),
        helper.make_node("Identity", ["d1"], ["i1"], name="ident"),
        helper.make_node("Add", ["two", "two"], ["four"], name="const_add"),
        helper.make_node("Conv", ["i1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Mul", ["c2", "four"], ["y"], name="scale_out"),
    ]
    for n in nodes:
        n.metadata_props.add(key="edgekit.module", value=f"net.{n.name}")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2, *bn, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.metadata_props.add(key="edgekit.source", value="test")
    return model


def test_portable_cleanup_folds_and_keeps_provenance(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(conv_bn_model(), src)
    result = optimize(src, dst, dims={"N": 2})
    assert result.ops_before == {"Conv": 2, "Add": 1, "BatchNormalization": 1, "Dropout": 1, "Identity": 1,
                                 "Mul": 1, "Relu": 1}
    assert result.ops_after == {"Conv": 2, "Mul": 1, "Relu": 1}
    assert all(v["ok"] for v in result.validation)
    model = onnx.load(dst)
    onnx.checker.check_model(model)
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert {p.key: p.value for p in model.metadata_props}["edgekit.source"] == "test"
    modules = {n.op_type: {p.key: p.value for p in n.metadata_props}.get("edgekit.module") for n in model.graph.node}
    assert modules["Relu"] == "net.relu1" and modules["Mul"] == "net.scale_out"
    # the optimized model still computes the same (checked independently of optimize's own check)
    import onnxruntime as ort
    x = np.random.default_rng(5).standard_normal((3, 3, 8, 8)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(src), opts).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(dst), opts).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_fix_shape_makes_inputs_static(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(conv_bn_model(), src)
    result = optimize(src, dst, fix_shapes=["x=2x3x8x8"])
    assert result.fixed_shapes == {"x": [2, 3, 8, 8]}
    dims = [d.dim_value for d in onnx.load(dst).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 8, 8]


def test_fix_shape_rejects_static_mismatch_and_writes_nothing(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(conv_bn_model(), src)
    with pytest.raises(UsageError, match="static size 3"):
        optimize(src, dst, fix_shapes=["x=1x4x8x8"])
    assert not dst.exists()


def test_ort_fusions_only_on_request_and_marked(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(conv_bn_model(batch=1), src)
    result = optimize(src, dst, ort_fusions=True)
    assert result.ort_only
    model = onnx.load(dst)
    assert any(n.domain == "com.microsoft" for n in model.graph.node)
    assert {p.key: p.value for p in model.metadata_props}["edgekit.runtime_only"] == "onnxruntime"


def test_output_equal_to_input_is_refused(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(conv_bn_model(batch=1), src)
    before = src.read_bytes()
    with pytest.raises(UsageError, match="same file"):
        optimize(src, src)
    assert src.read_bytes() == before


def test_cli_reports_node_counts(tmp_path):
    from edgekit.cli import main
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(conv_bn_model(batch=1), src)
    res = CliRunner().invoke(main, ["optimize", str(src), "-o", str(dst), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert "BatchNormalization" in res.output and dst.exists()

"""The pipeline with a dynamic token dim: `[model] dynamic_axes` reaches export, random calibration, evaluation and
bench run at `[model] dims`, and every TFLite variant keeps the dim dynamic and matches ONNX Runtime at two other
token counts. zoo:transformer (2 layers, d=32) is the fastest zoo sequence model whose dynamic form compiles (the
recurrent ones need a fixed step count)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgekit.errors import UsageError

CONFIG = """
[model]
spec = "zoo:transformer"
dynamic_axes = ["tokens:1=seq"]
dims = {seq = 24}
[variants]
include = ["tflite-fp32", "tflite-int8"]
speed = "off"
[data]
eval_samples = 4
[bench]
threads = [1]
runs = 3
min_time = 0.01
"""
PARENTS = {"tflite-fp32": "onnx-fp32", "tflite-int8": "onnx-int8"}


def test_pipeline_builds_dynamic_token_variants_that_match_ort_at_two_sizes(tmp_path):
    from edgekit import runtimes
    from edgekit.compare import compare
    from edgekit.pipeline import pipeline
    (tmp_path / "p.toml").write_text(CONFIG)
    report = pipeline(str(tmp_path / "p.toml"), tmp_path / "out", check_gates=False)
    assert report["dims"] == {"seq": 24}
    assert report["export"]["dynamic_axes"] == {"tokens": {"1": "seq"}} or report["export"]["dynamic_axes"] == \
        {"tokens": {1: "seq"}}
    calibration = np.load(tmp_path / "out" / "calibration-random-seq24.npz")
    assert calibration["tokens"].shape == (32, 24)   # calibrated at the given size, not one token
    rows = {r["variant"]: r for r in report["rows"]}
    for name, parent in PARENTS.items():
        row = rows[name]
        assert row["status"] == "ok", row["reason"]
        assert row["p50_ms"] is not None and row["accuracy"]["cosine"] > 0.99   # bench and evaluation ran at seq=24
        details = row["details"]
        assert {s["tokens"][1] for s in details["validated_shapes"]} == {16, 8}   # convert's own two sizes
        with runtimes.load(row["path"], runtime="litert") as sess:
            assert sess.inputs[0].shape[1] in (-1, "seq"), sess.inputs[0].shape
        (gate,) = details["outputs"]
        for seq in (8, 40):  # neither the export example size nor the bench size
            result = compare([tmp_path / "out" / f"{parent}.onnx", row["path"]], dims={"seq": seq}, atol=gate["atol"],
                             rtol=details["rtol"], check=True)
            assert result["inputs"]["shapes"]["tokens"] == [1, seq]
            (out,) = result["candidates"][0]["outputs"]
            assert out["passed"], (name, seq, out)


def test_dims_must_name_dynamic_dims_of_the_export():
    from edgekit.pipeline import dynamic_sizes
    info = {"inputs": [{"name": "tokens", "shape": [1, 16]}], "dynamic_axes": {"tokens": {"1": "seq"}}}
    assert dynamic_sizes(info, {}) == {"seq": 16}          # the export example size
    assert dynamic_sizes(info, {"seq": 40}) == {"seq": 40}
    with pytest.raises(UsageError, match=r"\['tokens'\].*its dynamic dimensions: \['seq'\]"):
        dynamic_sizes(info, {"tokens": 8})


@pytest.mark.parametrize("table,wrong", [('dims = {seq = 0}', "dims.seq = 0"), ('dims = {seq = "8"}', "dims.seq = '8'"),
                                         ('dynamic_axes = "tokens:1=seq"', "dynamic_axes"),
                                         ('zoo_dynamic = "yes"', "zoo_dynamic")])
def test_bad_dynamic_settings_are_refused(tmp_path, table, wrong):
    from edgekit.pipeline.config import load_config
    (tmp_path / "p.toml").write_text(f'[model]\nspec = "zoo:transformer"\n{table}\n')
    with pytest.raises(UsageError, match=wrong):
        load_config(str(tmp_path / "p.toml"))


def test_export_zoo_dynamic_applies_the_declared_axes(tmp_path):
    from edgekit.cli import main
    out = tmp_path / "t.onnx"
    result = CliRunner().invoke(main, ["export", "zoo:transformer", "--zoo-dynamic", "-o", str(out), "--json",
                                       "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["dynamic_axes"] == {"tokens": {"1": "seq"}}
    assert onnx.load(out).graph.input[0].type.tensor_type.shape.dim[1].dim_param == "seq"


def test_export_zoo_dynamic_refuses_an_entry_without_declared_axes(tmp_path):
    from edgekit.cli import main
    result = CliRunner().invoke(main, ["export", "zoo:mlp", "--zoo-dynamic", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "declares none" in result.output and "zoo:transformer" in result.output
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axis,keepdims", [(1, 0), (1, 1), (2, 0)])
def test_reduction_over_or_beside_a_dynamic_dim_converts_and_validates_at_two_sizes(tmp_path, op, axis, keepdims):
    """check.DYNAMIC_OK admits reductions with constant axes (zoo:transformer's mean over its tokens): convert
    validates each at the example size and another, against ONNX Runtime."""
    from onnx import TensorProto, helper
    from edgekit.convert import convert
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [axis])
    out_shape = [1 if i == axis else d for i, d in enumerate([1, "tokens", 8]) if keepdims or i != axis]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node(op, ["r", "axes"], ["y"], keepdims=keepdims)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "tokens", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "r.onnx")
    result = convert(tmp_path / "r.onnx", tmp_path / "r.tflite")
    assert result.passed and result.input_shapes == {"x": [1, -1, 8]}
    assert len({s["x"][1] for s in result.validated_shapes}) == 2

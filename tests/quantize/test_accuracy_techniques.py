"""Tensor-level blame and search, cross-layer equalization, bias correction and SmoothQuant on digits models with
an injected outlier channel (tests/quantize/outlier_models.py): static INT8 back within one point of float, and the
report says how."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, Techniques, quantize
from edgekit.quantize.equalize import check_exact, equalize, find_pairs
import outlier_models  # tests/quantize is on sys.path (pytest prepend import mode)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return outlier_models.outlier_cnn(tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return outlier_models.outlier_mlp(tmp_path_factory.mktemp("mlp"))


OFF = Techniques(equalize=False, smoothquant=False, bias_correction=False)
NO_SPEED = SpeedPolicy("off")


def held_out(data, **gate) -> dict:
    """The digits split every test here uses: calibrate on 40%, score on the held-out 60%, no speed check."""
    return dict(calibration=Calibration(str(data)), gate=AccuracyGate(eval_fraction=0.6, **gate), speed=NO_SPEED)


def _summary(path) -> dict:
    return json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["edgekit.quantization"])


def test_plain_int8_breaks_on_the_outlier_channel(cnn, tmp_path):
    model, data, float_acc = cnn
    r = quantize(model, tmp_path / "q.onnx", techniques=OFF, **held_out(data))
    assert float_acc > 0.9 and r.accuracy.drop > 0.3


def test_equalize_and_bias_correction_bring_the_cnn_within_one_point_and_say_so(cnn, tmp_path):
    model, data, _ = cnn
    out = tmp_path / "q.onnx"
    r = quantize(model, out, techniques=Techniques(equalize=True, bias_correction=True), **held_out(data))
    assert r.accuracy.drop <= 0.01 and r.plan.float_tensors == ()
    assert [t["technique"] for t in r.techniques] == ["equalization", "bias correction"]
    assert r.techniques[0]["after"] >= r.accuracy.float_accuracy - 0.02  # equalization alone: within 2 points
    eq = r.techniques[0]
    assert eq["technique"] == "equalization" and eq["applied"] and eq["before"] < 0.7 and eq["after"] >= eq["before"]
    assert "node_conv2d → node_conv2d_1" in eq["detail"]
    s = _summary(out)
    assert s["equalized"] is True and s["techniques"][0]["after"] == pytest.approx(eq["after"])


def test_tensor_search_keeps_the_outlier_tensors_and_conv2_weight_in_float(cnn, tmp_path):
    """The ReLU output and the pooled tensor share one scale: either alone in float gains nothing, both (plus the
    next conv's weights, whose matching input channel rounds to zero) restore float accuracy."""
    model, data, _ = cnn
    out = tmp_path / "q.onnx"
    r = quantize(model, out, techniques=OFF, **held_out(data, max_drop=0.01))
    assert r.accuracy.drop <= 0.01
    kept = {b.label for b in r.blame if b.tensor in r.plan.float_tensors}
    assert {"act1", "pool1"} <= kept and len(r.plan.float_tensors) <= 3
    assert r.blame[0].kind == "activation" and r.blame[0].module in ("act1", "pool1")
    # kept in float means no QuantizeLinear reads it, whatever produces or consumes it
    q = onnx.load(out)
    assert not {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"} & set(r.plan.float_tensors)
    assert r.techniques[-1]["technique"] == "float tensors" and r.techniques[-1]["after"] > 0.9
    assert _summary(out)["float_tensors"] == list(r.plan.float_tensors)


def test_max_drop_on_the_mlp_uses_equalization_first(mlp, tmp_path):
    model, data, _ = mlp
    r = quantize(model, tmp_path / "q.onnx", **held_out(data, max_drop=0.01))
    assert r.accuracy.drop <= 0.01 and r.plan.equalize and r.plan.float_tensors == ()
    assert [t["technique"] for t in r.techniques] == ["equalization"]


def test_mlp_tensor_search_restores_the_folded_relu_exactly(mlp, tmp_path):
    """ORT folds the ReLU into fc1's output quantization; keeping that tensor in float puts the ReLU back."""
    model, data, _ = mlp
    out = tmp_path / "q.onnx"
    r = quantize(model, out, techniques=OFF, **held_out(data, max_drop=0.01))
    assert r.accuracy.drop <= 0.01 and len(r.plan.float_tensors) == 1
    assert "Relu" in [n.op_type for n in onnx.load(out).graph.node]


def test_bias_correction_is_reported_and_kept_only_with_a_gain(cnn, tmp_path):
    model, data, _ = cnn
    r = quantize(model, tmp_path / "q.onnx", **held_out(data),
                 techniques=Techniques(equalize=True, bias_correction=True, smoothquant=False))
    bc = next(t for t in r.techniques if t["technique"] == "bias correction")
    assert bc["applied"] == (bc["after"] > bc["before"]) and r.plan.bias_correct == bc["applied"]


def test_equalization_is_exact_in_float(cnn):
    model, _, _ = cnn
    original = onnx.load(model)
    result = equalize(original)
    assert result.pairs and check_exact(original, result.proto) is None
    w = {t.name: numpy_helper.to_array(t) for t in result.proto.graph.initializer}
    ranges = np.abs(w["conv1.weight"]).reshape(8, -1).max(1)
    assert ranges.max() / np.median(ranges) < 10  # the x1000 channel is gone


def _chain(middle: list, consts=()):
    """x → Conv(a) → middle ops → Conv(b), as a model."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 2, 1, 1)).astype(np.float32), "a"),
             numpy_helper.from_array(rng.standard_normal((3, 4, 1, 1)).astype(np.float32), "b"), *consts]
    nodes = [helper.make_node("Conv", ["x", "a"], ["t0"], name="first")]
    for i, (op, extra, attrs) in enumerate(middle):
        nodes.append(helper.make_node(op, [f"t{i}", *extra], [f"t{i + 1}"], name=f"mid{i}", **attrs))
    nodes.append(helper.make_node("Conv", [f"t{len(middle)}", "b"], ["y"], name="second"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("middle", [
    [("Relu", [], {})], [("MaxPool", [], {"kernel_shape": [2, 2]}), ("Relu", [], {})],
    [("AveragePool", [], {"kernel_shape": [2, 2]})], [("LeakyRelu", [], {"alpha": 0.1})], []])
def test_pairs_through_positive_homogeneous_ops_are_rescaled_exactly(middle):
    model = _chain(middle)
    result = equalize(model)
    assert result.pairs == ["first → second"] and check_exact(model, result.proto) is None


def test_relu6_is_declined_with_the_reason():
    six = numpy_helper.from_array(np.array(6, np.float32), "six")
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    pairs, declined = find_pairs(_chain([("Clip", ["zero", "six"], {})], [six, zero]))
    assert not pairs and "not positive-homogeneous" in declined[0]


def test_cli_equalize_reports_the_gain(cnn, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main as cli
    model, data, _ = cnn
    res = CliRunner().invoke(cli, ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", str(data),
                                   "--eval-fraction", "0.6", "--speed", "off", "--equalize",
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "equalization" in res.output and "applied" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["techniques"][0]["technique"] == "equalization"


@pytest.mark.slow
def test_smoothquant_restores_the_transformer(tmp_path):
    model, data, _ = outlier_models.outlier_transformer(tmp_path)
    r = quantize(model, tmp_path / "q.onnx", **held_out(data, max_drop=0.01))
    assert r.accuracy.drop <= 0.01 and r.plan.smooth_alpha is not None
    sq = next(t for t in r.techniques if t["technique"] == "smoothquant")
    assert sq["applied"] and sq["after"] > sq["before"] and "layer_norm" in sq["detail"]


def test_pipeline_report_lists_each_variants_techniques():
    from edgekit.pipeline.report import techniques
    step = {"technique": "equalization", "metric": "accuracy", "before": 0.1, "after": 0.95, "applied": True,
            "gain": 0.85, "detail": "1 pair(s): conv1 → conv2"}
    rows = [{"variant": "onnx-int8", "details": {"techniques": [step]}},
            {"variant": "onnx-int8", "details": {"techniques": [step]}}, {"variant": "onnx-fp32", "details": {}}]
    assert techniques({"rows": rows}) == [
        ("onnx-int8", ["equalization: accuracy 0.1000 → 0.9500 (applied) — 1 pair(s): conv1 → conv2"])]

"""edgekit quantize on real data: accuracy on held-out digits, blame naming the broken layer, the --max-drop
search, and every bad input failing clearly with nothing written."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgekit.errors import GateError, UsageError
from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, Techniques, quantize

NO_SPEED = SpeedPolicy("off")
NO_TECHNIQUES = Techniques(equalize=False, smoothquant=False, bias_correction=False)


def _summary(path) -> dict:
    return json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["edgekit.quantization"])


def test_lenet_static_int8_keeps_digit_accuracy_within_one_point(lenet_digits, tmp_path):
    model, data, float_acc = lenet_digits
    out = tmp_path / "q.onnx"
    r = quantize(model, out, mode="static", calibration=Calibration(str(data)), gate=AccuracyGate(eval_fraction=0.6),
                 speed=NO_SPEED)
    assert r.accuracy.metric == "accuracy" and r.accuracy.samples == 360
    assert r.accuracy.float_accuracy == pytest.approx(float_acc, abs=1e-6)
    assert float_acc > 0.9  # the model really learned the digits
    assert r.accuracy.float_accuracy - r.accuracy.accuracy <= 0.01
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    s = _summary(out)
    assert s["mode"] == "static" and s["format"] == "qdq" and s["per_channel"] is True
    assert s["accuracy"]["accuracy"] == pytest.approx(r.accuracy.accuracy)


@pytest.mark.parametrize("mode", ["dynamic", "fp16"])
def test_lenet_dynamic_and_fp16_are_reported(lenet_digits, tmp_path, mode):
    model, data, _ = lenet_digits
    out = tmp_path / f"{mode}.onnx"
    r = quantize(model, out, mode=mode, calibration=Calibration(str(data)), gate=AccuracyGate(eval_fraction=0.6),
                 speed=NO_SPEED)
    assert r.accuracy.accuracy is not None and r.accuracy.float_accuracy - r.accuracy.accuracy <= 0.02
    types = {t.data_type for t in onnx.load(out).graph.initializer}
    assert (onnx.TensorProto.FLOAT16 in types) if mode == "fp16" else (onnx.TensorProto.INT8 in types)
    assert _summary(out)["mode"] == mode


def test_speed_check_reports_both_latencies(lenet_digits, tmp_path):
    model, data, _ = lenet_digits
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(data)), gate=AccuracyGate(eval_fraction=0.6),
                 speed=SpeedPolicy("check", allow_slower=True))
    assert r.speed.float_p50_ms > 0 and r.speed.p50_ms > 0
    assert _summary(tmp_path / "q.onnx")["speed"]["float_p50_ms"] == pytest.approx(r.speed.float_p50_ms)


# ---------------------------------------------------------------- a layer that is hard to quantize

def _make_hard_mlp():
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.act = nn.ReLU()
            self.hard = nn.Linear(64, 32)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            return self.head(self.hard(self.act(self.fc1(x))))

    return Net()


@pytest.fixture(scope="module")
def hard_mlp(tmp_path_factory, exporter):
    """A digits MLP whose layer 'hard' has one output channel scaled x2000 (the next layer's weights divided
    back): the float function is unchanged, but per-tensor quantization of that layer's output wipes out
    its other channels."""
    import torch
    from sklearn.datasets import load_digits
    torch.manual_seed(0)
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    net = _make_hard_mlp()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    for _ in range(30):
        for i in range(0, 1400, 100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
            opt.step()
    with torch.no_grad():
        net.hard.weight[0] *= 2000
        net.hard.bias[0] *= 2000
        net.head.weight[:, 0] /= 2000
    net.eval()
    root = tmp_path_factory.mktemp("hard")
    path = exporter(net, x[:1], root / "hard.onnx", input_name="x")
    data = root / "digits64.npz"
    np.savez(data, x=x[1000:], labels=y[1000:])  # 797 samples: 20% (159) held out for evaluation
    return path, data


def test_blame_names_the_hard_layer_first(hard_mlp, tmp_path):
    model, data = hard_mlp
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(data)), speed=NO_SPEED,
                 gate=AccuracyGate(blame=True))
    assert r.accuracy.drop > 0.05  # quantizing everything really breaks it
    assert r.blame[0].module == "hard"
    assert r.blame[0].drop_if_float is not None and r.blame[0].drop_if_float <= 0.01
    assert r.blame[0].local_sqnr_db < min(b.local_sqnr_db for b in r.blame[1:]) - 10


def test_max_drop_without_rescaling_keeps_exactly_the_hard_output_tensor_in_float(hard_mlp, tmp_path):
    model, data = hard_mlp
    out = tmp_path / "q.onnx"
    r = quantize(model, out, calibration=Calibration(str(data)), speed=NO_SPEED, gate=AccuracyGate(max_drop=0.01),
                 techniques=NO_TECHNIQUES)
    assert r.accuracy.drop <= 0.01
    kept = [b.module for b in r.blame if b.tensor in r.plan.float_tensors]
    assert kept == ["hard"] and len(r.plan.float_tensors) == 1 and r.plan.keep_float == ()
    s = _summary(out)
    assert s["float_tensors"] == list(r.plan.float_tensors) and s["techniques"][-1]["technique"] == "float tensors"


def test_max_drop_tries_equalization_before_keeping_anything_in_float(hard_mlp, tmp_path):
    model, data = hard_mlp
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(data)), speed=NO_SPEED,
                 gate=AccuracyGate(max_drop=0.01))
    assert r.accuracy.drop <= 0.01 and r.plan.float_tensors == () and r.plan.equalize
    eq = r.techniques[0]
    assert eq["technique"] == "equalization" and eq["applied"] and eq["after"] - eq["before"] > 0.05


def test_unreachable_budget_fails_the_gate_and_writes_nothing(hard_mlp, tmp_path):
    model, data = hard_mlp
    out = tmp_path / "q.onnx"
    with pytest.raises(GateError, match="hard"):
        quantize(model, out, calibration=Calibration(str(data)), speed=NO_SPEED,
                 gate=AccuracyGate(max_drop=0.0001, max_float_layers=0), techniques=NO_TECHNIQUES)
    assert not out.exists()


def test_exclude_by_module_path(hard_mlp, tmp_path):
    model, data = hard_mlp
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(data)), speed=NO_SPEED, exclude=["hard"])
    assert len(r.plan.exclude) == 1
    with pytest.raises(UsageError, match="matched no node"):
        quantize(model, tmp_path / "q2.onnx", calibration=Calibration(str(data)), speed=NO_SPEED,
                 exclude=["no.such.module"])
    assert not (tmp_path / "q2.onnx").exists()

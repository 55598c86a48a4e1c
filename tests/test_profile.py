"""edgekit profile: ORT per-node breakdown with MACs and providers; LiteRT's whole-model fallback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
from rt_models import classifier_model, conv_model, fully_connected  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.profile import kernel_macs, profile, summarize_ort_trace, tflite_macs  # noqa: E402

CONV_MACS = 1 * 4 * 8 * 8 * (3 * 3 * 3)  # output elements x (Cin x kh x kw)


def test_onnx_profile_breakdown(tmp_path):
    r = profile(conv_model(tmp_path / "conv.onnx"), runs=4, warmup=2, threads=1, optimization="disable")
    assert r["per_node"] and r["runs"] == 4 and r["provider"] == "cpu"
    ops = {g["op_type"]: g for g in r["op_types"]}
    assert set(ops) == {"Conv", "Relu"}
    assert ops["Conv"]["macs"] == CONV_MACS and ops["Relu"]["macs"] is None
    assert sum(n["share"] for n in r["nodes"]) == pytest.approx(1.0)
    assert all(n["provider"] == "cpu" and n["mean_us"] > 0 and n["calls_per_run"] == 1 for n in r["nodes"])
    assert r["total_macs"] == CONV_MACS and r["gmacs_per_s"] > 0
    assert r["run_ms"] >= r["kernel_ms"] > 0
    conv = next(n for n in r["nodes"] if n["op_type"] == "Conv")
    assert conv["input_shapes"][0] == [1, 3, 8, 8] and conv["output_shapes"] == [[1, 4, 8, 8]]


def test_fused_graph_keeps_macs(tmp_path):
    r = profile(conv_model(tmp_path / "conv.onnx"), runs=2, warmup=1, threads=1, optimization="all")
    assert r["total_macs"] == CONV_MACS  # Conv+Relu fuse into one kernel; its MACs come from the profiled shapes


def test_batch_scales_macs(tmp_path):
    r = profile(classifier_model(tmp_path / "c.onnx", dynamic=True), batch=5, runs=2, warmup=0, threads=1)
    assert r["total_macs"] == 5 * 16 * 10


def test_warmup_runs_are_not_counted():
    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 10}

    def node(ts, dur):
        return {"cat": "Node", "name": "mm_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": "MatMul", "provider": "CPUExecutionProvider",
                         "input_type_shape": [{"float": [2, 8]}, {"float": [8, 4]}],
                         "output_type_shape": [{"float": [2, 4]}]}}
    trace = [run(0), node(1, 1000), run(100), node(101, 6), run(200), node(201, 4)]
    nodes, op_types, runs = summarize_ort_trace(trace, skip_runs=1)
    assert runs == [10.0, 10.0]
    assert nodes[0]["mean_us"] == 5.0 and nodes[0]["macs"] == 2 * 4 * 8 and nodes[0]["provider"] == "cpu"
    assert op_types[0]["op_type"] == "MatMul" and op_types[0]["count"] == 1


@pytest.mark.parametrize("op,ins,outs,expected", [
    ("Conv", [[1, 3, 8, 8], [4, 3, 3, 3]], [[1, 4, 8, 8]], CONV_MACS),
    ("FusedConv", [[1, 8, 4, 4], [8, 1, 3, 3]], [[1, 8, 4, 4]], 8 * 16 * 9),  # depthwise: Cin/group = 1
    ("Gemm", [[2, 16], [10, 16]], [[2, 10]], 2 * 10 * 16),
    ("FusedMatMul", [[3, 5, 7], [7, 2]], [[3, 5, 2]], 3 * 5 * 2 * 7),
    ("Relu", [[1, 4]], [[1, 4]], None),
])
def test_kernel_macs(op, ins, outs, expected):
    assert kernel_macs(op, ins, outs) == expected


def test_tflite_macs():
    assert tflite_macs("CONV_2D", [[1, 8, 8, 3], [4, 3, 3, 3]], [[1, 8, 8, 4]]) == CONV_MACS
    assert tflite_macs("DEPTHWISE_CONV_2D", [[1, 8, 8, 4], [1, 3, 3, 4]], [[1, 8, 8, 4]]) == 256 * 9
    assert tflite_macs("FULLY_CONNECTED", [[2, 4], [3, 4]], [[2, 3]]) == 24


def test_tflite_profile_is_whole_model_with_reason(tmp_path):
    path = tmp_path / "fc.tflite"
    path.write_bytes(fully_connected(np.ones((3, 4), np.float32)))
    r = profile(path, runs=3, warmup=1, threads=1)
    assert r["per_node"] is False and r["runs"] == 3 and r["run_ms"] > 0
    assert r["op_types"][0]["op_type"] == "FULLY_CONNECTED" and r["total_macs"] == 12
    assert "no op profiler" in r["notes"][0]


def test_cli_profile(tmp_path):
    out_json = tmp_path / "p.json"
    result = CliRunner().invoke(main, ["profile", str(conv_model(tmp_path / "conv.onnx")), "--runs", "2",
                                       "--json", str(out_json), "--top", "1"])
    assert result.exit_code == 0, result.output
    assert "Slowest 1 of" in result.stdout and "By op type" in result.stdout and "GMAC/s" in result.stdout
    assert json.loads(out_json.read_text())["total_macs"] == CONV_MACS


def test_cli_profile_garbage_file(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    result = CliRunner().invoke(main, ["profile", str(bad)])
    assert result.exit_code == 3 and "Traceback" not in result.output

"""What the CLI does is a library call: pipeline()'s gates, bundle()'s processing merge and convert()'s per-output
verdicts work the same from Python as from `edgekit ...`."""
from __future__ import annotations

import json

import pytest

from edgekit.errors import GateError, ValidationError


def test_pipeline_raises_its_own_gates_with_the_report_written(tmp_path):
    from edgekit.pipeline import pipeline
    overrides = {"variants": ["onnx-fp32"], "fail_below": 1.5}  # cosine to itself is 1.0: below 1.5
    with pytest.raises(GateError, match="below --fail-below / \\[gate\\] fail_below 1.5") as caught:
        pipeline("zoo:mlp", tmp_path / "out", overrides=overrides)
    assert caught.value.report["best"] == "onnx-fp32" and caught.value.exit_code == 6
    assert json.loads((tmp_path / "out" / "report.json").read_text())["best"] == "onnx-fp32"
    report = pipeline("zoo:mlp", tmp_path / "out", overrides=overrides, check_gates=False)
    assert report["best"] == "onnx-fp32"


def test_bundle_merges_a_processing_file_with_key_value_overrides(zoo_onnx, tmp_path):
    from edgekit.bundle import bundle
    processing = tmp_path / "processing.toml"
    processing.write_text('labels = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]\n'
                          '[preprocess]\nscale = "1/255"\nmean = [0.5]\n[postprocess]\nsoftmax = true\n')
    result = bundle(zoo_onnx("mlp"), tmp_path / "m.ekb", preprocess=[str(processing), "mean=0.25", "std=2"])
    m = result.manifest
    assert m["preprocess"]["mean"] == [0.25] and m["preprocess"]["std"] == [2.0]
    assert m["preprocess"]["scale"] == pytest.approx(1 / 255)
    assert m["postprocess"]["softmax"] is True and m["labels"][0] == "a"
    with pytest.raises(Exception, match="at most one preprocessing file"):
        bundle(zoo_onnx("mlp"), tmp_path / "n.ekb", preprocess=[str(processing), str(processing)])


def test_convert_gives_each_output_the_verdict_its_gate_used(zoo_onnx, tmp_path):
    from edgekit.convert import convert
    ok = convert(zoo_onnx("mlp"), tmp_path / "ok.tflite")
    assert ok.passed and all(o["passed"] for o in ok.outputs) and all(o["atol"] == ok.atol for o in ok.outputs)
    worst = max(o["max_abs"] for o in ok.outputs)
    assert worst > 0  # float32 kernels differ a little: a zero tolerance must fail, output by output
    with pytest.raises(ValidationError, match="tolerance atol=0 "):
        convert(zoo_onnx("mlp"), tmp_path / "strict.tflite", atol=0.0, rtol=0.0)
    assert not (tmp_path / "strict.tflite").exists()


def test_one_json_encoder_numbers_finite_floats_and_names_inf_and_nan():
    import numpy as np

    from edgekit.fileio import to_json
    text = to_json({"a": np.float32(0.5), "b": float("inf"), "c": [float("-inf"), float("nan")], "d": np.arange(2),
                    "e": np.dtype("int8"), "f": (1, True, None)})
    assert json.loads(text) == {"a": 0.5, "b": "inf", "c": ["-inf", "nan"], "d": [0, 1], "e": "int8", "f": [1, True, None]}
    assert "Infinity" not in text and "NaN" not in text  # strict JSON: jq and JavaScript parse it


def test_every_json_writer_uses_the_one_encoder():
    """No `json.dumps(..., default=...)` of its own in a --json path: the CLI, pipeline reports and bundle manifests
    all go through edgekit.fileio.to_json (a grep, so a seventh encoder shows up here)."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "edgekit"
    for rel in ("cli/common.py", "pipeline/__init__.py", "pipeline/report.py", "bundle/write.py"):
        text = (root / rel).read_text()
        assert "to_json(" in text and "default=str" not in text and "def _jsonable" not in text, rel

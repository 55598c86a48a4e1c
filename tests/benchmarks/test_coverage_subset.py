"""The coverage suite's fast subset (benchmarks/coverage.py --quick) through the suite's own per-model function:
every step ends converted-and-validated or refused with a reason, never a crash; the models whose float TFLite
converts today keep converting. The suite's plumbing (child processes, records, table) is tested without models."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# by path, under its own name: `import coverage` could find the coverage.py measurement tool instead
_spec = importlib.util.spec_from_file_location("edgekit_coverage_suite", BENCHMARKS / "coverage.py")
coverage = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = coverage
_spec.loader.exec_module(coverage)
coverage_models = coverage.coverage_models


#: models of the fast subset whose float TFLite converts and validates today: a regression shows here
FLOAT_CONVERTS_TODAY = {"resnet18", "squeezenet1_1", "shufflenet_v2_x0_5", "mobilenet_v2", "mobilenet_v3_small",
                        "lraspp_mobilenet_v3_large", "vit_tiny", "hf_vit", "hf_bert"}
FINAL = {"ok", "refused", "skipped"}  # anything else (crashed, error, timeout) is a failure of edgekit or the suite


def test_the_fast_subset_has_about_ten_models_of_every_input_kind_the_suite_knows():
    kinds = {coverage_models.MODELS[n].kind for n in coverage_models.QUICK}
    assert 8 <= len(coverage_models.QUICK) <= 12
    assert {"image", "tokens"} <= kinds
    assert FLOAT_CONVERTS_TODAY <= set(coverage_models.QUICK)


def test_every_model_lists_inputs_of_its_kind_and_text_models_take_int64_ids_and_mask():
    for m in coverage_models.MODELS.values():
        assert m.source in ("torchvision", "transformers") and m.inputs
        if m.kind == "tokens":
            assert [(n, d) for n, _, d in m.inputs] == [("input_ids", "int64"), ("attention_mask", "int64")]


def test_calibration_inputs_are_seeded_and_of_the_right_kind():
    bert = coverage_models.MODELS["hf_bert"]
    a, b = coverage.sample_inputs(bert, 4, seed=3), coverage.sample_inputs(bert, 4, seed=3)
    assert all((a[k] == b[k]).all() for k in a)
    assert a["input_ids"].dtype.name == "int64" and 0 <= a["input_ids"].min() and a["input_ids"].max() < bert.vocab
    assert set(a["attention_mask"].ravel().tolist()) <= {0, 1} and (a["attention_mask"][:, 0] == 1).all()
    wav = coverage.sample_inputs(coverage_models.MODELS["hf_wav2vec2"], 2)["input_values"]
    assert wav.shape == (2, 4000) and abs(wav).max() < 1


def test_a_step_whose_process_aborts_becomes_a_crashed_record_not_the_end_of_the_run(tmp_path):
    record = coverage.run_step("selftest_abort", "resnet18", tmp_path, timeout=60)  # os.abort() in the child
    assert record["status"] == "crashed" and "SIGABRT" in record["reason"]


def test_a_step_past_its_time_limit_is_killed_and_recorded(tmp_path):
    record = coverage.run_step("export", "vgg11_bn", tmp_path, timeout=0.5)
    assert record["status"] == "timeout"


def test_the_table_totals_and_grouped_reasons_come_from_the_records():
    ok = {"status": "ok"}
    records = {
        "a": {"model": "a", "source": "torchvision", "steps": {
            "export": ok, "optimize": ok, "float": {"status": "ok", "compile_s": 1.5},
            "bench": {"status": "ok", "ratio": 0.5}, "static": ok,
            "int8": {"status": "ok", "cosine": 0.99, "top1": 1.0}, "dynamic": ok, "dynamic_range": ok}},
        "b": {"model": "b", "source": "transformers", "steps": {
            "export": ok, "optimize": ok,
            "float": {"status": "refused", "reason": "1 node(s) cannot be compiled",
                      "problems": [{"op_type": "IsNaN", "reason": "no TFLite lowering exists for this op"}]},
            "bench": {"status": "skipped", "blocked_by": "float"},
            "static": {"status": "crashed", "reason": "killed by SIGABRT"},
            "int8": {"status": "skipped", "blocked_by": "static"}, "dynamic": ok,
            "dynamic_range": {"status": "ok", "cosine": 1.0}}},
    }
    t = coverage.totals(records)
    assert t["percent"] == {"float": 50.0, "INT8": 50.0, "dynamic-range": 100.0}
    assert math.isclose(t["geomean_litert_over_ort_p50"], 0.5)
    text = coverage.report(records)
    assert "| a | torchvision | yes | yes (top1 1.00, cos 0.990) | yes (cos" in text
    assert "[float] unsupported: IsNaN (no TFLite lowering exists for this op)" in text
    assert "[INT8] static: crashed: killed by SIGABRT" in text
    assert coverage.blocking_reasons(records)["IsNaN: no TFLite lowering exists for this op"] == ["b (float)"]


def test_a_conversion_refused_by_validation_shows_the_agreement_it_was_refused_at():
    rec = {"model": "c", "source": "torchvision", "steps": {
        "int8": {"status": "refused", "reason": "differs", "cosine": 0.98123, "top1": 0.625,
                 "steps_off": {"y": 11.2}, "reference_moves": {"y": 8.0}},
        "dynamic_range": {"status": "refused", "reason": "1 node(s) cannot be compiled"}}}
    assert coverage._cell(rec, "int8") == "no (refused at top1 0.62, cos 0.981; 11 steps off, the QDQ reference itself moves 8)"
    assert coverage._cell(rec, "dynamic_range") == "no"  # refused before anything ran: no agreement to show


def test_results_are_resumable_json_lines_where_the_last_record_wins(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"model": "a", "n": 1}) + "\n" + json.dumps({"model": "a", "n": 2}) + "\n")
    assert coverage.read_results(out)["a"]["n"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", coverage_models.QUICK)
def test_every_step_of_a_fast_subset_model_converts_and_validates_or_is_refused_with_a_reason(name, tmp_path):
    library = coverage_models.MODELS[name].source  # torchvision models need the coverage extra; HF ones the test extra
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed (pip install -e '.[coverage]' for the torchvision models)")
    record = coverage.run_model(name, work=tmp_path, timeout=240)
    for step, result in record["steps"].items():
        assert result["status"] in FINAL, f"{name} {step}: {result['status']}: {result.get('reason')}"
        if result["status"] == "refused":
            assert result["reason"].strip(), f"{name} {step} refused without a reason"
        if result["status"] == "ok" and step in coverage.CONVERSIONS:
            # convert() returns only after validation passed: the figures it validated are in the record
            assert math.isfinite(result["max_abs"]) and result["cosine"] > 0.9, (name, step, result)
    if name in FLOAT_CONVERTS_TODAY:
        assert record["steps"]["float"]["status"] == "ok", record["steps"]["float"]

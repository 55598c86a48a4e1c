"""ONNX's backend node tests as the compiler's conformance suite: every direct test of an op type edgekit registers,
frozen and untouched, compiled and run on LiteRT. Each ends as a pass or a refusal with its reason; a wrong value,
an exception, a crash or a hang fails the suite."""
from __future__ import annotations

import pytest

from edgekit.converters.tflite import conformance
from edgekit.converters.tflite.registry import onnx_ops

SHARDS = 4  # the suite is split so pytest-xdist spreads it over the cores


@pytest.fixture(scope="module")
def registered_cases():
    registered = set(onnx_ops())
    return [c for c in conformance.direct_cases() if conformance.op_type_of(c) in registered]


@pytest.mark.parametrize("shard", range(SHARDS))
def test_node_tests_pass_or_are_refused_with_a_reason(registered_cases, shard):
    cases = registered_cases[shard::SHARDS]
    results = conformance.run_all(cases, timeout=120)
    defects = [r for r in results if r.outcome not in ("pass", "refused")]
    assert not defects, "\n".join(f"{r.outcome}: {r.case} ({r.form}): {r.detail}" for r in defects)
    silent = [r for r in results if r.outcome == "refused" and len(r.detail.strip()) < 10]
    assert not silent, f"refusals without a reason: {[r.case for r in silent]}"
    assert any(r.outcome == "pass" for r in results)


def test_a_wrong_value_is_reported_as_wrong():
    import numpy as np
    assert conformance.mismatch(np.asarray([1.0, 2.0], np.float32), np.asarray([1.0, 2.5], np.float32))
    assert conformance.mismatch(np.asarray([1, 2]), np.asarray([1, 3]))
    assert conformance.mismatch(np.asarray([1.0, np.nan]), np.asarray([1.0, 1.0]))
    assert conformance.mismatch(np.ones([2, 3], np.float32), np.ones([3, 2], np.float32))
    assert not conformance.mismatch(np.asarray([1.0, np.nan]), np.asarray([1.0, np.nan], np.float32))


def test_a_crashing_case_costs_one_row_not_the_run(monkeypatch):
    """An abort inside a child (as LiteRT aborts on a kernel it cannot prepare) becomes a `crash` row."""
    import os
    case = next(c for c in conformance.direct_cases() if c.name == "test_relu")
    monkeypatch.setattr(conformance, "run_case", lambda case, form: os.abort())
    results = conformance.run_all([case], forms=("frozen",))
    assert [r.outcome for r in results] == ["crash"] and "signal" in results[0].detail

"""The coverage suite with `--ray`: each model is a Ray task on a local instance, and every record the driver writes
is the serial run's record, timings aside (benchmarks/coverage.py run_models_on_ray)."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# by path, under its own name (as test_coverage_subset.py): `import coverage` could find the coverage.py tool
_spec = importlib.util.spec_from_file_location("edgekit_coverage_suite", BENCHMARKS / "coverage.py")
coverage = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = coverage
_spec.loader.exec_module(coverage)

#: the fast subset's models that need no torchvision (not installed here), cheapest first
CHEAP = ["hf_bert", "hf_vit"]
TIMINGS = {"seconds", "compile_s", "validate_s", "finished"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def test_the_command_line_writes_each_ray_tasks_record_as_the_serial_run_writes_it(local_ray, tmp_path, capsys):
    # a 0.5 s step limit: every export is killed (in the worker's child process) and the rest is skipped, cheaply
    common = ["--models", ",".join(CHEAP), "--step-timeout", "0.5"]
    assert coverage.main([*common, "--out", str(tmp_path / "serial.jsonl")]) == 0
    assert coverage.main([*common, "--out", str(tmp_path / "ray.jsonl"), "--ray", "auto"]) == 0
    serial, on_ray = (coverage.read_results(tmp_path / f) for f in ("serial.jsonl", "ray.jsonl"))
    assert sorted(on_ray) == sorted(CHEAP)
    for name in CHEAP:
        assert on_ray[name]["steps"]["export"] == {"status": "timeout", "reason": "step took longer than 0.5 s",
                                                  "seconds": 0.5, "blocked_by": "export"}
        assert without_timings(on_ray[name]) == without_timings(serial[name])
        assert on_ray[name]["seconds"] > 0
    # resumable as the serial run is: a model already in --out is not sent to Ray again
    capsys.readouterr()
    assert coverage.main([*common, "--out", str(tmp_path / "ray.jsonl"), "--ray", "auto"]) == 0
    assert "hf_bert: already in" in capsys.readouterr().out
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == len(CHEAP)


@pytest.mark.slow
def test_models_converted_on_ray_have_the_serial_runs_outcomes_and_figures(local_ray):
    steps = ("export", "optimize", "float")
    serial = {name: coverage.run_model(name, steps=steps, timeout=240) for name in CHEAP}
    on_ray = []
    coverage.run_models_on_ray(CHEAP, "auto", timeout=240, steps=steps, on_record=on_ray.append)
    assert sorted(r["model"] for r in on_ray) == sorted(CHEAP)
    for rec in on_ray:
        ref = serial[rec["model"]]
        assert {s: r["status"] for s, r in rec["steps"].items()} == {s: "ok" for s in steps}, rec["steps"]
        rec, ref = without_timings(rec), without_timings(ref)
        assert {k: v for k, v in rec.items() if k != "steps"} == {k: v for k, v in ref.items() if k != "steps"}
        assert rec["steps"].keys() == ref["steps"].keys()
        for step, result in rec["steps"].items():
            expected = ref["steps"][step]
            assert result.keys() == expected.keys()
            for key, value in result.items():
                if isinstance(value, float):
                    # validation figures: every export draws the model's random weights afresh (unseeded torch
                    # init), and a Ray task has one CPU: they differ at the noise level (seen: 3.5e-6 vs 4.5e-6)
                    assert value == pytest.approx(expected[key], abs=1e-5), (rec["model"], step, key)
                else:  # exporter, opset, node and op counts, size, mode: the same conversion
                    assert value == expected[key], (rec["model"], step, key)


def step_processes(marker: str) -> list[str]:
    """The suite's step processes (`coverage.py --child STEP ... --work DIR`) whose work folder is under `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "--child" in cmd and marker in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_ctrl_c_cancels_the_ray_tasks_and_leaves_no_step_process_or_partial_record(tmp_path):
    out = tmp_path / "r.jsonl"
    # the step processes' work folders go under tmp_path (Ray's own files stay in /tmp: socket paths are short)
    env = dict(os.environ, TMPDIR=str(tmp_path), RAY_TMPDIR="/tmp")
    proc = subprocess.Popen([sys.executable, str(BENCHMARKS / "coverage.py"), "--models", CHEAP[0], "--ray", "auto",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while not step_processes(str(tmp_path)):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no step started on Ray: {proc.communicate()}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    deadline = time.monotonic() + 15
    while step_processes(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert step_processes(str(tmp_path)) == []
    assert not out.exists() or out.read_text() == ""  # no record of a model that did not finish

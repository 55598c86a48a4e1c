"""edgekit bench: the timing loop, the isolated per-model workers, the report and the CLI's errors."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
from rt_models import classifier_model, conv_model, fully_connected  # noqa: E402

import edgekit.runtimes as runtimes  # noqa: E402
from edgekit.bench import bench, time_callable, time_session  # noqa: E402
from edgekit.cli import main  # noqa: E402
from edgekit.errors import InvalidModelError, UsageError  # noqa: E402

W = np.eye(3, 4, dtype=np.float32)


@pytest.fixture
def models(tmp_path):
    onnx_path = conv_model(tmp_path / "conv.onnx")
    tfl = tmp_path / "fc.tflite"
    tfl.write_bytes(fully_connected(W))
    return onnx_path, tfl


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_time_session_statistics(models):
    with runtimes.load(models[0]) as sess:
        stats = time_session(sess, np.ones((1, 3, 8, 8), np.float32), runs=25, warmup=2)
    assert stats.runs == 25 and len(stats.samples_ms) == 25 and stats.warmup == 2
    assert stats.min <= stats.p50 <= stats.p90 <= stats.p99 <= max(stats.samples_ms)
    assert stats.mean == pytest.approx(np.mean(stats.samples_ms)) and stats.std >= 0 and stats.first_ms > 0
    d = stats.as_dict(samples=False)
    assert "samples_ms" not in d and d["p50_ms"] == stats.p50 and d["inferences_per_s"] == pytest.approx(1000 / stats.mean)


def test_min_time_mode_takes_at_least_the_minimum_runs():
    stats = time_callable(lambda: None, min_time=0.0001, warmup=0)
    assert stats.runs >= 10 and not stats.stopped_early


def test_time_limit_stops_a_runaway_loop_cleanly():
    stats = time_callable(lambda: time.sleep(0.02), runs=10_000, warmup=0, time_limit=0.2)
    assert stats.stopped_early and 1 <= stats.runs < 10_000


def test_bench_report_contents(models):
    report = bench([str(m) for m in models], runs=20, warmup=2, threads=1, samples=True)
    assert report["edgekit_bench"] == 1
    env = report["environment"]
    assert env["usable_cores"] >= 1 and "python" in env and "onnxruntime" in env["packages"]
    assert report["settings"]["runs"] == 20 and report["settings"]["isolated"] is True
    onnx_r, tfl_r = report["models"]
    assert (onnx_r["runtime"], onnx_r["format"], tfl_r["runtime"]) == ("onnxruntime", "onnx", "litert")
    for r in (onnx_r, tfl_r):
        assert r["status"] == "ok" and r["threads"] == 1
        assert r["latency"]["runs"] == 20 and len(r["latency"]["samples_ms"]) == 20
        assert r["load_ms"] > 0 and r["first_ms"] > 0 and r["file_size_bytes"] == Path(r["model"]).stat().st_size
        assert r["throughput"]["samples_per_s"] == pytest.approx(r["throughput"]["inferences_per_s"] * r["batch"])
        assert r["memory"]["peak_rss_delta_mb"] >= 0 and r["memory"]["peak_rss_mb"] > r["memory"]["peak_rss_delta_mb"]
    first, second = report["comparison"]
    assert first["p50_ratio"] == 1.0
    assert second["p50_ratio"] == pytest.approx(tfl_r["latency"]["p50_ms"] / onnx_r["latency"]["p50_ms"])


def test_bench_in_process_matches_schema(models):
    report = bench([models[0]], runs=5, warmup=1, isolate=False)
    assert report["models"][0]["status"] == "ok" and report["settings"]["isolated"] is False


def test_bench_batch_and_dims(tmp_path):
    path = classifier_model(tmp_path / "dyn.onnx", dynamic=True)
    by_dim = bench([path], runs=3, warmup=0, dims={"batch": 4})["models"][0]
    by_batch = bench([path], runs=3, warmup=0, batch=3)["models"][0]
    assert by_dim["inputs"]["x"]["shape"] == [4, 16] and by_dim["batch"] == 4
    assert by_batch["inputs"]["x"]["shape"] == [3, 16]


def test_dynamic_dim_without_value_names_it(tmp_path):
    path = classifier_model(tmp_path / "dyn.onnx", dynamic=True)
    with pytest.raises(UsageError, match="dynamic dimension 'batch'"):
        bench([path], runs=2)
    result = invoke("bench", path, "--runs", "2")
    assert result.exit_code == 2 and "'batch'" in result.stderr and "--dim batch=" in result.stderr


def test_truncated_and_garbage_files(tmp_path, models):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(models[0].read_bytes()[:60])
    garbage = tmp_path / "notes.onnx"
    garbage.write_text("this is not a model\n")
    with pytest.raises(InvalidModelError):
        bench([cut], runs=2)
    for bad in (cut, garbage):
        result = invoke("bench", bad, "--runs", "2")
        assert result.exit_code == 3, result.output
        assert str(bad) in result.stderr and "Traceback" not in result.output


def test_one_bad_model_among_several_reports_the_rest(tmp_path, models):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(models[1].read_bytes()[:100])
    out_json = tmp_path / "b.json"
    result = invoke("bench", models[0], cut, "--runs", "3", "--json", out_json)
    assert result.exit_code == 3
    data = json.loads(out_json.read_text())
    assert [m["status"] for m in data["models"]] == ["ok", "error"]
    assert data["models"][1]["error"]["type"] == "InvalidModelError"


def test_wrong_inputs_file_lists_mismatches(tmp_path, models):
    npz = tmp_path / "inputs.npz"
    np.savez(npz, image=np.zeros((1, 3, 8, 8), np.float32), x=np.zeros((1, 3, 5, 5), np.float32))
    result = invoke("bench", models[0], "--inputs", npz, "--runs", "2")
    assert result.exit_code == 2
    msg = " ".join(result.stderr.split())
    assert "unexpected keys ['image']" in msg and "'x' has shape [1, 3, 5, 5]" in msg


def test_real_inputs_are_used(tmp_path, models):
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.ones((1, 3, 8, 8), np.float32))
    r = bench([models[0]], inputs=str(npz), runs=2)
    assert r["settings"]["inputs"] == str(npz) and r["models"][0]["inputs"]["x"]["shape"] == [1, 3, 8, 8]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="CUDAExecutionProvider is installed; this checks the error without it")
def test_cuda_where_unavailable_exits_7(models):
    result = invoke("bench", models[0], "--provider", "cuda", "--runs", "2")
    assert result.exit_code == 7
    assert "onnxruntime-gpu" in result.stderr and "Traceback" not in result.output


def test_cli_json_and_table(tmp_path, models):
    out_json = tmp_path / "bench.json"
    result = invoke("bench", *models, "--runs", "5", "--threads", "1", "--json", out_json)
    assert result.exit_code == 0, result.output
    assert "p50 ms" in result.stdout and "p50 vs first" in result.stdout
    data = json.loads(out_json.read_text())
    assert [m["model"] for m in data["models"]] == [str(m) for m in models]
    assert "samples_ms" not in data["models"][0]["latency"]  # only with --samples
    result = invoke("bench", models[0], "--runs", "3", "--json", "-")
    assert json.loads(result.stdout)["models"][0]["latency"]["runs"] == 3


@pytest.mark.parametrize("args,needle", [(["--runs", "0"], "--runs"), (["--runs", "3", "--min-time", "1"], "either"),
                                         (["--batch", "0"], "--batch")])
def test_bad_numbers_are_usage_errors(models, args, needle):
    result = invoke("bench", models[0], *args)
    assert result.exit_code == 2 and needle in result.stderr


@pytest.mark.parametrize("command", ["bench", "profile", "compare"])
def test_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output and "--json" in result.output


def test_time_limit_in_bench_is_reported(tmp_path, models):
    r = bench([models[0]], runs=1_000_000, warmup=0, time_limit=0.3)["models"][0]
    assert r["status"] == "ok" and r["latency"]["stopped_early"] and r["latency"]["runs"] < 1_000_000
    assert any("time limit" in n for n in r["notes"])


def test_optimization_level_reaches_the_session(models):
    r = bench([models[0]], runs=2, optimization="disable")
    assert r["models"][0]["options"]["optimization"] == "disable"


def _worker_processes() -> dict[int, int]:
    """pid → session id of every `python -m edgekit.bench` process this test process started (Linux /proc)."""
    import os
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"edgekit.bench" in cmdline and (int(stat[1]) == os.getpid() or int(stat[3]) in found):
            found[int(entry.name)] = int(stat[3])
    return found


def _in_session(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or sys.platform == "win32", reason="needs Linux /proc and SIGSTOP")
def test_a_worker_that_stops_answering_is_killed_after_the_time_limit(models, monkeypatch):
    """The worker is frozen with SIGSTOP while it loads the model: it never writes a line or a result again.
    bench must kill it (and its whole session) once --time-limit plus the grace period has passed."""
    import os
    import signal

    import edgekit.bench as bench_module
    monkeypatch.setattr(bench_module, "KILL_GRACE_S", 1.0)
    frozen = []

    def progress(event):
        if event.get("phase") == "load" and not frozen:
            (pid,) = _worker_processes()
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
    report = bench([models[0]], min_time=60, warmup=0, time_limit=1.0, keep_going=True, progress=progress)
    (result,) = report["models"]
    assert frozen, "the worker never reached its load phase"
    assert result["status"] == "error" and result["error"]["exit_code"] == 6
    assert "was still running 2 s after starting (--time-limit 1.0 s); it was stopped" in result["error"]["message"]
    pid = frozen[0]
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped: not even a zombie
    assert _in_session(pid) == [] and _worker_processes() == {}  # nothing it started is left either


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or sys.platform == "win32", reason="needs Linux /proc and SIGSTOP")
def test_a_hung_worker_alone_is_a_gate_error(models, monkeypatch):
    import os
    import signal

    import edgekit.bench as bench_module
    from edgekit.errors import GateError
    monkeypatch.setattr(bench_module, "KILL_GRACE_S", 0.5)

    def freeze_at_load(event):
        if event.get("phase") == "load":
            for pid in _worker_processes():
                os.kill(pid, signal.SIGSTOP)
    with pytest.raises(GateError, match="it was stopped"):
        bench([models[1]], min_time=60, warmup=0, time_limit=0.5, progress=freeze_at_load)
    assert _worker_processes() == {}

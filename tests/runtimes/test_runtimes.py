"""edgekit.runtimes: one interface over ONNX Runtime and LiteRT; loud provider problems; no torch/onnx imports."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rt_models import classifier_model, conv_model, fully_connected  # noqa: E402

import edgekit.runtimes as runtimes  # noqa: E402
from edgekit.errors import EnvironmentProblem, InvalidModelError, UsageError  # noqa: E402
from edgekit.runtimes.ort import parse_placement_log  # noqa: E402

HAS_CUDA = "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()
W = (np.arange(12, dtype=np.float32).reshape(3, 4) - 6) / 10


@pytest.fixture
def conv_onnx(tmp_path):
    return conv_model(tmp_path / "conv.onnx")


@pytest.fixture
def fc_tflite(tmp_path):
    path = tmp_path / "fc.tflite"
    path.write_bytes(fully_connected(W, dynamic_batch=True))
    return path


def test_onnx_describe_and_run_three_ways(conv_onnx, rng):
    with runtimes.load(conv_onnx) as sess:
        assert sess.runtime == "onnxruntime" and sess.provider == "cpu"
        (x,), (y,) = sess.inputs, sess.outputs
        assert (x.name, x.shape, x.dtype) == ("x", (1, 3, 8, 8), np.float32)
        assert y.describe() == {"name": "y", "dtype": "float32", "shape": [1, 4, 8, 8], "layout": None}
        data = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
        by_name, by_list, single = sess.run({"x": data}), sess.run([data]), sess.run(data)
    for out in (by_list, single):
        np.testing.assert_array_equal(out["y"], by_name["y"])
    assert by_name["y"].shape == (1, 4, 8, 8) and by_name["y"].min() >= 0  # Relu


def test_onnx_checks_feeds(conv_onnx):
    with runtimes.load(conv_onnx) as sess:
        with pytest.raises(UsageError, match=r"shape \[1, 3, 4, 4\].*\[1, 3, 8, 8\]"):
            sess.run(np.zeros((1, 3, 4, 4), np.float32))
        with pytest.raises(UsageError, match="missing \\['x'\\]"):
            sess.run({"image": np.zeros((1, 3, 8, 8), np.float32)})
        out = sess.run(np.zeros((1, 3, 8, 8), np.float64))  # same-kind casts are made for the caller
        assert out["y"].dtype == np.float32
        with pytest.raises(UsageError, match="dtype complex64, the model expects float32"):
            sess.run(np.zeros((1, 3, 8, 8), np.complex64))


def test_dynamic_dims_are_labelled(tmp_path):
    with runtimes.load(classifier_model(tmp_path / "c.onnx", dynamic=True)) as sess:
        assert sess.inputs[0].shape == ("batch", 16) and not sess.inputs[0].is_static
        assert sess.run(np.ones((3, 16), np.float32))["logits"].shape == (3, 10)


def test_placement_is_recorded_per_node(conv_onnx):
    with runtimes.load(conv_onnx, provider="cpu") as sess:
        assert sess.placement == {"cpu": [("Conv", ""), ("Relu", "")]} or \
            sorted(op for op, _ in sess.placement["cpu"]) == ["Conv", "Relu"]
        assert sess.notes == []


def test_placement_log_parser_reads_ort_verbose_format():
    # the lines ORT's VerifyEachNodeIsAssignedToAnEp prints at verbose level when nodes are split
    log = textwrap.dedent("""\
        2026-01-01 [V:onnxruntime:, session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] Node placements
        2026-01-01 [V:onnxruntime:, session_state.cc:1610 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 2
        2026-01-01 [V:onnxruntime:, session_state.cc:1612 VerifyEachNodeIsAssignedToAnEp]   Conv (conv1)
        2026-01-01 [V:onnxruntime:, session_state.cc:1612 VerifyEachNodeIsAssignedToAnEp]   Relu (relu1)
        2026-01-01 [V:onnxruntime:, session_state.cc:1610 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1
        2026-01-01 [V:onnxruntime:, session_state.cc:1612 VerifyEachNodeIsAssignedToAnEp]   NonMaxSuppression (nms)
    """)
    assert parse_placement_log(log) == {"cuda": [("Conv", "conv1"), ("Relu", "relu1")],
                                        "cpu": [("NonMaxSuppression", "nms")]}


def test_placement_log_is_captured_from_a_real_session(conv_onnx):
    import onnxruntime as ort

    from edgekit.runtimes.ort import _logged_placement
    placement = _logged_placement(ort, str(conv_onnx), ort.SessionOptions(), ["CPUExecutionProvider"])
    assert list(placement) == ["cpu"] and len(placement["cpu"]) >= 1


@pytest.mark.skipif(HAS_CUDA, reason="CUDAExecutionProvider is installed here; this checks the error without it")
def test_cuda_requested_without_it_names_what_to_install(conv_onnx):
    with pytest.raises(EnvironmentProblem) as err:
        runtimes.load(conv_onnx, provider="cuda")
    assert err.value.exit_code == 7
    assert "onnxruntime-gpu" in str(err.value) and 'pip install "edgekit[gpu]"' in str(err.value)


@pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider is not available (CPU build of onnxruntime / no GPU)")
def test_cuda_runs_and_reports_placement(conv_onnx):
    with runtimes.load(conv_onnx, provider="cuda") as sess:
        assert sess.provider == "cuda"
        assert "cuda" in sess.placement
        assert sess.run(np.zeros((1, 3, 8, 8), np.float32))["y"].shape == (1, 4, 8, 8)


def test_litert_describe_run_and_resize(fc_tflite):
    with runtimes.load(fc_tflite, threads=1) as sess:
        assert sess.runtime == "litert" and sess.options["xnnpack"] is True
        assert sess.inputs[0].shape == (None, 4) and sess.outputs[0].shape == (None, 3)
        for n in (1, 5, 2):  # dynamic batch: the interpreter is resized as needed
            x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
            np.testing.assert_allclose(sess.run(x)["y"], x @ W.T, rtol=1e-5, atol=1e-6)


def test_litert_without_xnnpack_gives_same_result(fc_tflite):
    x = np.ones((2, 4), np.float32)
    with runtimes.load(fc_tflite, xnnpack=False) as plain, runtimes.load(fc_tflite) as fast:
        np.testing.assert_allclose(plain.run(x)["y"], fast.run(x)["y"], rtol=1e-6)


def test_runner_matches_run(conv_onnx, fc_tflite):
    for path, x in ((conv_onnx, np.ones((1, 3, 8, 8), np.float32)), (fc_tflite, np.ones((3, 4), np.float32))):
        with runtimes.load(path) as sess:
            prepared = sess.prepare(x)
            raw = sess.runner(prepared)()
            np.testing.assert_array_equal(np.asarray(raw[0]), sess.run(x)[sess.outputs[0].name])


@pytest.mark.parametrize("suffix,builder", [(".onnx", "onnx"), (".tflite", "tflite")])
def test_truncated_model_is_invalid(tmp_path, suffix, builder):
    src = conv_model(tmp_path / "full.onnx").read_bytes() if builder == "onnx" else fully_connected(W)
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(InvalidModelError) as err:
        runtimes.load(bad)
    assert err.value.exit_code == 3 and str(bad) in str(err.value)


def test_format_runtime_mismatch_is_a_usage_error(conv_onnx, fc_tflite):
    with pytest.raises(UsageError, match="LiteRT cannot run"):
        runtimes.load(conv_onnx, runtime="litert")
    with pytest.raises(UsageError, match="ONNX Runtime cannot run"):
        runtimes.load(fc_tflite, runtime="onnxruntime")
    with pytest.raises(UsageError, match="runs on the CPU"):
        runtimes.load(fc_tflite, provider="cuda")


def test_bytes_are_accepted(conv_onnx, fc_tflite):
    with runtimes.load(conv_onnx.read_bytes()) as a, runtimes.load(fc_tflite.read_bytes()) as b:
        assert a.path == b.path == "<bytes>"
        assert b.run(np.ones((1, 4), np.float32))["y"].shape == (1, 3)


def test_layout_metadata_becomes_tensorinfo_layout(tmp_path):
    with runtimes.load(conv_model(tmp_path / "nhwc.onnx", nhwc=True)) as sess:
        assert sess.inputs[0].layout == "NHWC" and sess.outputs[0].layout == "NHWC"


# ---------------------------------------------------------------- subprocess checks with imports blocked

BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = {blocked!r}
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ImportError('No module named ' + repr(name) + ' (blocked by the test)')
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str, blocked, *args) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_load_and_run_without_torch_or_onnx(conv_onnx, fc_tflite):
    proc = run_blocked("""
        import numpy as np
        import edgekit.runtimes as rt
        from edgekit.bench import time_session
        for path in sys.argv[1:]:
            with rt.load(path) as s:
                x = np.ones([d if isinstance(d, int) else 2 for d in s.inputs[0].shape], np.float32)
                out = s.run(x)
                stats = time_session(s, x, runs=3, warmup=1)
                print(s.runtime, list(out)[0], stats.runs)
        assert not {'torch', 'onnx'} & set(sys.modules), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx'))
    """, ("torch", "onnx", "onnxscript"), conv_onnx, fc_tflite)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["onnxruntime y 3", "litert y 3"]


def test_missing_onnxruntime_gives_pip_line(conv_onnx):
    proc = run_blocked("""
        import edgekit.runtimes as rt
        from edgekit.errors import EnvironmentProblem
        try:
            rt.load(sys.argv[1])
        except EnvironmentProblem as exc:
            print(exc.exit_code, exc)
    """, ("onnxruntime",), conv_onnx)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("7 ") and 'pip install "edgekit[onnx]"' in proc.stdout


def test_missing_litert_gives_pip_line(fc_tflite):
    proc = run_blocked("""
        import edgekit.runtimes as rt
        from edgekit.errors import EnvironmentProblem
        try:
            rt.load(sys.argv[1])
        except EnvironmentProblem as exc:
            print(exc.exit_code, exc)
    """, ("ai_edge_litert", "tflite_runtime"), fc_tflite)
    assert proc.returncode == 0, proc.stderr
    # ai-edge-litert is installed here, so blocking it reads as a broken install; both messages carry the fix
    assert proc.stdout.startswith("7 ") and "pip install" in proc.stdout and "ai-edge-litert" in proc.stdout


def test_missing_runtime_through_the_cli(conv_onnx):
    proc = run_blocked("""
        from edgekit.cli import main
        main(['bench', sys.argv[1], '--runs', '2', '--in-process'])
    """, ("onnxruntime",), conv_onnx)
    assert proc.returncode == 7, proc.stderr
    assert "pip install" in proc.stderr and "onnxruntime" in proc.stderr and "Traceback" not in proc.stderr


def test_cpu_fallback_under_cuda_is_loud(conv_onnx):
    """The CUDA placement check, fed the placement ORT reports when some nodes cannot run on CUDA."""
    from edgekit.runtimes.base import ProviderFallbackWarning
    with runtimes.load(conv_onnx) as sess:
        placement = {"cuda": [("Conv", "conv1")], "cpu": [("Shape", "s"), ("NonMaxSuppression", "nms")]}
        with pytest.warns(ProviderFallbackWarning, match=r"1 of 3 compute node\(s\).*nms \[NonMaxSuppression\]"):
            sess._note_cpu_fallback(placement)
        assert "shape-arithmetic" in sess.notes[-1]
        sess._note_cpu_fallback({"cuda": [("Conv", "c")], "cpu": [("Shape", "s")]})  # shape ops only: a note
        assert "every compute node is on CUDA" in sess.notes[-1]


def test_describe(conv_onnx):
    with runtimes.load(conv_onnx, threads=1) as sess:
        d = sess.describe()
    assert d["runtime"] == "onnxruntime" and d["threads"] == 1 and d["inputs"][0]["shape"] == [1, 3, 8, 8]

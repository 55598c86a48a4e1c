"""A .tflite with dynamic dims through the tools: `edgekit compare`, `edgekit bench --dim`, and `edgekit.load` (plain
file and bundle) each size the model per call and match ONNX Runtime at two sizes of the batch and token dims.

The model is built with onnx.helper (symbolic dims 'batch' and 'tokens', shared by two inputs), converted once."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgekit.cli import main

SIZES = [{"batch": 3, "tokens": 12}, {"batch": 1, "tokens": 5}]
ATOL, RTOL = 1e-5, 1e-4  # edgekit convert's float32 gate


def _token_model(path):
    """x [batch, tokens, 8], mask [batch, tokens, 1] → y = softmax(relu(x·W1 + b1)·W2) · mask, [batch, tokens, 4]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("w1", (8, 16)), ("b1", (16,)), ("w2", (16, 4)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m"]), helper.make_node("Add", ["m", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["z"]),
             helper.make_node("Softmax", ["z"], ["s"], axis=-1), helper.make_node("Mul", ["s", "mask"], ["y"])]
    graph = helper.make_graph(
        nodes, "tokens", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", 8]),
                          helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "tokens", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from edgekit.convert import convert
    root = tmp_path_factory.mktemp("dyn_tools")
    onnx_path = _token_model(root / "tokens.onnx")
    result = convert(onnx_path, root / "tokens.tflite")
    assert result.input_shapes == {"x": [-1, -1, 8], "mask": [-1, -1, 1]}
    return onnx_path, root / "tokens.tflite"


def _feeds(batch: int, tokens: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, tokens, 1), np.float32)
    mask[-1, tokens // 2:] = 0
    return {"x": rng.standard_normal((batch, tokens, 8)).astype(np.float32), "mask": mask}


def _ort(onnx_path, feeds) -> np.ndarray:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_compare_sizes_the_dynamic_tflite_at_each_dim_and_batch(models):
    from edgekit.compare import compare
    onnx_path, tflite = models
    for size in SIZES:
        report = compare([onnx_path, tflite], dims={"tokens": size["tokens"]}, batch=size["batch"], atol=ATOL,
                         rtol=RTOL, check=True)
        assert report["inputs"]["shapes"] == {"x": [size["batch"], size["tokens"], 8],
                                              "mask": [size["batch"], size["tokens"], 1]}
        (out,) = report["candidates"][0]["outputs"]
        assert out["passed"] and out["max_abs"] <= ATOL, out


def test_cli_compare_with_dim_passes(models):
    onnx_path, tflite = models
    result = CliRunner().invoke(main, ["compare", str(onnx_path), str(tflite), "--dim", "tokens=7", "--batch", "2",
                                       "--atol", str(ATOL), "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["passed"] and report["inputs"]["shapes"]["x"] == [2, 7, 8]


def test_bench_dim_runs_the_tflite_at_the_size_given(models, tmp_path):
    _, tflite = models
    for size in SIZES:
        out = tmp_path / f"bench_{size['tokens']}.json"
        result = CliRunner().invoke(main, ["bench", str(tflite), "--dim", f"tokens={size['tokens']}", "--batch",
                                           str(size["batch"]), "--runs", "3", "--json", str(out)])
        assert result.exit_code == 0, result.output
        (model,) = json.loads(out.read_text())["models"]
        assert model["status"] == "ok" and model["batch"] == size["batch"]
        assert model["inputs"]["x"]["shape"] == [size["batch"], size["tokens"], 8]
        assert model["inputs"]["mask"]["shape"] == [size["batch"], size["tokens"], 1]


def test_bench_without_a_token_size_names_the_dim(models):
    _, tflite = models
    result = CliRunner().invoke(main, ["bench", str(tflite), "--batch", "1", "--runs", "2"])
    assert result.exit_code == 2 and "tokens" in result.output and "--dim" in result.output, result.output


def _assert_runs_at_every_size(model, onnx_path):
    # back and forth: each call resizes to its own inputs, and a size seen before runs again correctly
    for k, size in enumerate(SIZES + SIZES[::-1] + [{"batch": 2, "tokens": 9}]):
        feeds = _feeds(size["batch"], size["tokens"], seed=k)
        got = model(feeds)["y"]
        want = _ort(onnx_path, feeds)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def test_load_resizes_per_call(models):
    import edgekit
    onnx_path, tflite = models
    with edgekit.load(tflite) as model:
        assert model.runtime == "litert"
        assert [i.shape for i in model.inputs] == [("batch", "tokens", 8), ("batch", "tokens", 1)]
        _assert_runs_at_every_size(model, onnx_path)


def test_bundled_dynamic_tflite_resizes_per_call(models, tmp_path):
    import edgekit
    from edgekit.bundle import bundle
    onnx_path, tflite = models
    bundle(tflite, tmp_path / "tokens.ekb")
    with edgekit.load(tmp_path / "tokens.ekb") as model:
        _assert_runs_at_every_size(model, onnx_path)


def test_timed_runner_keeps_its_size_after_other_calls(models):
    """bench's runner resizes once before timing; a plain run at another size in between must not break it."""
    from edgekit import runtimes
    onnx_path, tflite = models
    big, small = _feeds(3, 12), _feeds(1, 5, seed=1)
    with runtimes.load(str(tflite), runtime="litert", threads=1) as session:
        run_big = session.runner(session.prepare(big))
        np.testing.assert_allclose(session.run(small)["y"], _ort(onnx_path, small), atol=ATOL, rtol=RTOL)
        (got,) = run_big()
        np.testing.assert_allclose(got, _ort(onnx_path, big), atol=ATOL, rtol=RTOL)

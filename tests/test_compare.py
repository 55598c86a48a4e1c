"""edgekit compare: identical inputs, output alignment, channels-last I/O, gates and exit codes."""
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
from edgekit.compare import adapt_input, adapt_output, compare, is_spec  # noqa: E402
from edgekit.errors import UsageError, ValidationError  # noqa: E402
from edgekit.runtimes.base import TensorInfo  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_identical_models_agree_exactly(tmp_path):
    a = classifier_model(tmp_path / "a.onnx")
    b = classifier_model(tmp_path / "b.onnx")
    r = compare([a, b], atol=0, rtol=0, min_cosine=1.0)
    (out,) = r["candidates"][0]["outputs"]
    assert r["passed"] and out["cosine"] == pytest.approx(1.0) and out["max_abs"] == 0.0
    assert out["sqnr_db"] == "inf" and out["top1_agreement"] == 1.0
    result = invoke("compare", a, b, "--min-cosine", "0.999999", "--atol", "0")
    assert result.exit_code == 0, result.output
    assert "pass" in result.stdout


def test_perturbed_model_fails_the_gate(tmp_path):
    a = classifier_model(tmp_path / "a.onnx")
    b = classifier_model(tmp_path / "b.onnx", noise=0.2)
    r = compare([a, b], min_cosine=0.9999)
    out = r["candidates"][0]["outputs"][0]
    assert not r["passed"] and out["failed_gates"] == ["cosine"] and 0.5 < out["cosine"] < 0.9999
    with pytest.raises(ValidationError):
        compare([a, b], atol=1e-6, check=True)
    result = invoke("compare", a, b, "--atol", "1e-4", "--rtol", "1e-4")
    assert result.exit_code == 5
    assert "b.onnx:logits (tolerance)" in " ".join(result.stderr.split())
    assert invoke("compare", a, b).exit_code == 0  # no gate: report only


def test_channels_last_io_is_transposed(tmp_path):
    nchw = conv_model(tmp_path / "nchw.onnx", seed=3)
    nhwc = conv_model(tmp_path / "nhwc.onnx", seed=3, nhwc=True)
    for order in ([nchw, nhwc], [nhwc, nchw]):
        r = compare(order, atol=1e-5, rtol=1e-5)
        assert r["passed"], r
        assert r["candidates"][0]["outputs"][0]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert compare([nchw, nhwc])["inputs"]["shapes"] == {"x": [1, 3, 8, 8]}


def test_outputs_align_by_position_when_names_differ(tmp_path):
    a = classifier_model(tmp_path / "a.onnx")
    b = classifier_model(tmp_path / "b.onnx", out_name="scores")
    r = compare([a, b], min_cosine=0.999)
    cand = r["candidates"][0]
    assert r["passed"] and cand["alignment"].startswith("by position")
    assert cand["outputs"][0]["candidate_output"] == "scores"


def test_onnx_against_tflite(tmp_path):
    w = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    import onnx
    from onnx import helper, numpy_helper
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "wt"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(w.T.copy(), "wt")])
    onnx_path = tmp_path / "fc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx_path)
    tfl = tmp_path / "fc.tflite"
    tfl.write_bytes(fully_connected(w))
    r = compare([onnx_path, tfl], atol=1e-5, rtol=1e-5)
    assert r["passed"] and r["candidates"][0]["runtime"] == "litert"


def test_against_pytorch_source(zoo_onnx):
    r = compare(["zoo:lenet", zoo_onnx("lenet")], atol=1e-4, rtol=1e-4)
    assert r["reference"]["runtime"] == "pytorch" and r["passed"]


def test_quantized_io_is_quantized_and_dequantized():
    info = TensorInfo("x", np.dtype(np.int8), (1, 4), None, {"scale": [0.5], "zero_point": [3]})
    q = adapt_input(np.array([[0.0, 1.0, -1.0, 100.0]], np.float32), info)
    assert q.dtype == np.int8 and q.tolist() == [[3, 5, 1, 127]]
    np.testing.assert_allclose(adapt_output(q, info), [[0.0, 1.0, -1.0, 62.0]])


def test_channels_last_helpers():
    info = TensorInfo("x", np.dtype(np.float32), (1, 5, 6, 3), "NHWC")
    x = np.arange(90, dtype=np.float32).reshape(1, 3, 5, 6)
    assert adapt_input(x, info).shape == (1, 5, 6, 3)
    np.testing.assert_array_equal(adapt_output(adapt_input(x, info), info), x)


def test_spec_detection(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert is_spec("zoo:resnet") and is_spec("models.py:build") and is_spec("pkg.mod:make")
    assert not is_spec(str(f)) and not is_spec("model.onnx")


def test_wrong_inputs_and_counts(tmp_path):
    a = classifier_model(tmp_path / "a.onnx")
    npz = tmp_path / "in.npz"
    np.savez(npz, image=np.zeros((1, 16), np.float32))
    result = invoke("compare", a, a, "--inputs", npz)
    assert result.exit_code == 2 and "missing inputs ['x']" in " ".join(result.stderr.split())
    with pytest.raises(UsageError, match="at least two"):
        compare([a])
    c = conv_model(tmp_path / "c.onnx")
    with pytest.raises(UsageError):
        compare([a, c])


def test_json_report(tmp_path):
    a = classifier_model(tmp_path / "a.onnx")
    result = invoke("compare", a, a, "--json", "-")
    data = json.loads(result.stdout)  # strict JSON: inf SQNR is written as a string
    assert data["passed"] and data["candidates"][0]["outputs"][0]["sqnr_db"] == "inf"


FACTORIES = '''
import torch

class Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, image):
        return self.fc(self.conv(image).mean((2, 3)))

class Tokens(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)

    def forward(self, ids):
        return self.embed(ids).sum(1)

def conv():
    torch.manual_seed(0)
    return Conv()

def tokens():
    torch.manual_seed(0)
    return Tokens()
'''


@pytest.fixture(scope="module")
def factory_models(tmp_path_factory):
    """A file.py with factories that declare no input shapes, and their ONNX exports (one perturbed)."""
    import onnx

    from edgekit.converters.torch_export import export
    root = tmp_path_factory.mktemp("factories")
    (root / "nets.py").write_text(FACTORIES)
    conv = root / "conv.onnx"
    export(f"{root / 'nets.py'}:conv", conv, input_shapes=["1x3x12x12"], exporter="torchscript")
    tokens = root / "tokens.onnx"
    export(f"{root / 'nets.py'}:tokens", tokens, input_shapes=["ids=1x6:int64"], exporter="torchscript")
    model = onnx.load(str(conv))
    for init in model.graph.initializer:
        if len(init.dims) == 4:  # the conv weight
            w = onnx.numpy_helper.to_array(init) + np.float32(0.05)
            init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
    (root / "conv_bad.onnx").write_bytes(model.SerializeToString())
    return root


def test_factory_spec_takes_input_shape_as_export_does_and_gates(factory_models):
    spec = f"{factory_models / 'nets.py'}:conv"
    result = invoke("compare", spec, factory_models / "conv.onnx", "--input-shape", "1x3x12x12", "--atol", "1e-4",
                    "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and data["reference"]["runtime"] == "pytorch"
    assert data["inputs"]["shapes"] == {"image": [1, 3, 12, 12]}
    result = invoke("compare", spec, factory_models / "conv_bad.onnx", "--input-shape", "1x3x12x12", "--atol", "1e-4")
    assert result.exit_code == 5 and "conv_bad.onnx" in result.stderr and "Traceback" not in result.output


def test_named_int64_input_shape_reaches_the_spec(factory_models):
    spec = f"{factory_models / 'nets.py'}:tokens"
    r = compare([spec, factory_models / "tokens.onnx"], input_shapes=["ids=1x6:int64"], atol=1e-5)
    assert r["passed"] and r["inputs"]["shapes"] == {"ids": [1, 6]} and r["inputs"]["dtypes"] == {"ids": "int64"}


def test_spec_takes_the_model_files_shapes_when_none_are_given(factory_models):
    spec = f"{factory_models / 'nets.py'}:conv"
    for order in ([spec, factory_models / "conv.onnx"], [factory_models / "conv.onnx", spec]):
        r = compare(order, atol=1e-4)
        assert r["passed"] and r["inputs"]["shapes"] == {"image": [1, 3, 12, 12]}
    with pytest.raises(UsageError, match=r"failed on inputs image 1x6 int64 \(shapes from '.*tokens.onnx'\)"):
        compare([spec, factory_models / "tokens.onnx"])  # rank-2 int64 inputs for a conv net


def test_input_shape_errors_are_usage_errors(factory_models):
    spec = f"{factory_models / 'nets.py'}:conv"
    result = invoke("compare", spec, factory_models / "conv.onnx", "--input-shape", "1x3x12")
    assert result.exit_code == 2 and "failed on inputs image 1x3x12 float32 (shapes from --input-shape)" in \
        " ".join(result.stderr.split()) and "Traceback" not in result.output
    result = invoke("compare", spec, factory_models / "conv.onnx", "--input-shape", "1x3x12x12:complex")
    assert result.exit_code == 2 and "Cannot read the shape" in result.stderr
    result = invoke("compare", factory_models / "conv.onnx", factory_models / "conv.onnx", "--input-shape", "1x3x12x12")
    assert result.exit_code == 2 and "no SPEC was given" in " ".join(result.stderr.split())

"""The flatbuffer writer: one 'serving_default' SignatureDef by ONNX names, tensors named by PyTorch module path."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")


def _interpreter(data: bytes):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    return interp


@pytest.fixture(scope="module")
def resnet(zoo_onnx):
    import onnx

    from edgekit.converters.tflite import compile_onnx
    path = zoo_onnx("resnet", "1x3x32x32")
    return onnx.load(str(path)), compile_onnx(str(path)).to_bytes()


def test_one_serving_default_signature_by_onnx_names(resnet):
    model, data = resnet
    interp = _interpreter(data)
    inputs, outputs = [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    assert interp.get_signature_list() == {"serving_default": {"inputs": inputs, "outputs": outputs}}
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    by_signature = interp.get_signature_runner("serving_default")(**{inputs[0]: x})
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_array_equal(by_signature[outputs[0]], interp.get_tensor(interp.get_output_details()[0]["index"]))
    assert [d["name"] for d in interp.get_input_details()] == inputs  # graph I/O keep their ONNX names
    assert [d["name"] for d in interp.get_output_details()] == outputs


def test_tensor_names_carry_the_pytorch_module_path(resnet):
    model, data = resnet
    modules = {p.value for n in model.graph.node for p in n.metadata_props if p.key == "edgekit.module"}
    assert "layer1.0.relu" in modules  # the export recorded them (dynamo name scopes)
    names = [d["name"] for d in _interpreter(data).get_tensor_details()]
    assert len(set(names)) == len(names)
    prefixed = [n for n in names if n.split("/")[0] in modules]
    assert any(n.startswith("layer1.0") for n in prefixed) and any(n.startswith("layer4.1") for n in prefixed)
    assert any(n.startswith("stem.") for n in prefixed)
    assert "layer1.0/relu_2" in names  # the block's output: relu after the residual add, in BasicBlock.forward


def test_lenet_profile_reads_like_the_pytorch_model(zoo_onnx, tmp_path):
    """The names reach what users see: LiteRT's op list in `edgekit profile` names ops by module."""
    from edgekit.convert import convert
    from edgekit.profile import litert_ops
    convert(zoo_onnx("lenet"), tmp_path / "lenet.tflite")
    interp = _interpreter((tmp_path / "lenet.tflite").read_bytes())
    nodes = [n["name"] for n in litert_ops(interp)[0]]
    assert {"features.0", "features.3", "features.6", "classifier.1"} <= {n.split("/")[0] for n in nodes}
    assert nodes[-1] == "logits"


def test_names_without_module_metadata_are_left_alone():
    from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor
    from edgekit.converters.tflite.writer import tensor_names
    g = TflGraph()
    for name in ("x", "w", "h", "h2", "q", "y"):
        g.tensors[name] = TflTensor(name, [1], np.dtype(np.float32), np.ones(1, np.float32) if name == "w" else None)
    g.inputs, g.outputs = ["x"], ["y"]
    g.ops = [TflOp("ADD", ["x", "w"], ["h"], origin="add_0", module="block.add"),
             TflOp("QUANTIZE", ["h"], ["q"], origin="add_0/requantize"),  # a pass's op: its origin's module
             TflOp("RELU", ["q"], ["h2"], origin="relu_0"),                  # no module recorded
             TflOp("NEG", ["h2"], ["y"], origin="neg_0", module="head")]
    assert tensor_names(g) == {"x": "x", "w": "w", "h": "block.add/h", "q": "block.add/q", "h2": "h2", "y": "y"}

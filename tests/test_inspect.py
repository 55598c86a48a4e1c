"""inspect: ONNX facts (I/O, ops, parameters, MACs, quantization) round-trip through the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import InvalidModelError
from edgekit.inspect import inspect


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["mlp", "lenet", "lstm", "transformer", "vae_encoder", "gan_generator"])
def test_zoo_models_round_trip_through_inspect(zoo_onnx, name, tmp_path):
    path = zoo_onnx(name)
    proc = _cli("inspect", str(path), "--json", str(tmp_path / "i.json"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    from edgekit.zoo import ZOO
    entry = ZOO[name]
    assert [i["name"] for i in info["inputs"]] == [n for n, _, _ in entry.inputs]
    assert [i["shape"] for i in info["inputs"]] == [list(s) for _, s, _ in entry.inputs]
    assert [o["name"] for o in info["outputs"]] == list(entry.outputs)
    assert info["parameter_count"] > 0 and info["parameters"]["float32"]["bytes"] > 0
    assert info["quantization"] == "float"
    assert info["metadata"]["edgekit.source"] == f"zoo:{name}"
    assert info["macs"] > 0
    assert info["valid"] is True and info["problems"] == []


def test_lenet_macs_are_exact(zoo_onnx):
    info = inspect(zoo_onnx("lenet"))
    conv = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 32 * 9 + 3 * 3 * 64 * 64 * 9
    assert info["macs_by_op"]["Conv"] == conv
    assert info["macs_by_op"]["Gemm"] == 576 * 64 + 64 * 10


def test_lstm_macs(zoo_onnx):
    info = inspect(zoo_onnx("lstm"))
    assert info["macs_by_op"]["LSTM"] == 16 * 4 * 32 * (8 + 32)


def test_dynamic_dims_shown_by_label(tmp_path):
    from edgekit.converters.torch_export import export
    export("zoo:gru", tmp_path / "g.onnx", dynamic_batch=True, dynamic_axes=["x:1=seq"])
    info = inspect(tmp_path / "g.onnx")
    assert info["inputs"][0]["shape"] == ["batch", "seq", 8]
    proc = _cli("inspect", str(tmp_path / "g.onnx"))
    assert "batchxseqx8" in proc.stdout


def test_quantization_status_detected(tmp_path, zoo_onnx):
    from onnxruntime.quantization import quantize_dynamic
    quantize_dynamic(str(zoo_onnx("mlp")), str(tmp_path / "q.onnx"))
    assert inspect(tmp_path / "q.onnx")["quantization"] == "dynamic INT8"


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, b"garbage that is not a model" * 3, b"\x08\x07\x12\xff\xff"])
def test_broken_files(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    proc = _cli("inspect", str(bad))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "bad.onnx" in proc.stderr


def test_truncated_onnx(tmp_path, zoo_onnx):
    data = zoo_onnx("lenet").read_bytes()
    bad = tmp_path / "t.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelError):
        inspect(bad)


def test_tflite_through_the_cli(zoo_onnx, tmp_path):
    from edgekit.convert import convert
    convert(zoo_onnx("lenet"), tmp_path / "l.tflite")
    proc = _cli("inspect", str(tmp_path / "l.tflite"), "--json", str(tmp_path / "i.json"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["format"] == "tflite" and info["quantization"] == "float"
    assert info["parameter_count"] >= 93_322 and info["ops"]["CONV_2D"] == 3
    human = _cli("inspect", str(tmp_path / "l.tflite"))
    assert human.returncode == 0 and "CONV_2D" in human.stdout


def _onnx_file(path, text: str, names: str = ""):
    import onnx.parser
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n' + text)
    for node, name in zip(model.graph.node, names.split()):
        node.name = name
    path.write_bytes(model.SerializeToString())
    return path


INVALID_ONNX = {
    "cycle": ("g (float[1,4] x) => (float[1,4] y) { a = Add(x, c)\n b = Relu(a)\n c = Neg(b)\n y = Identity(b) }",
              "A B C D", "nodes in the graph depend on each other in a cycle: 'A' → 'B' → 'C' → 'A'"),
    "two_writers": ("g (float[1,4] x) => (float[1,4] y) { y = Relu(x)\n y = Neg(x) }", "first second",
                    "tensor 'y' in the graph is written by two nodes, 'first' and 'second'"),
    "unknown_op": ("g (float[1,4] x) => (float[1,4] y) { y = Frobnicate(x) }", "",
                   "onnx.checker: No Op registered for Frobnicate"),
}


@pytest.mark.parametrize("case", sorted(INVALID_ONNX))
def test_invalid_onnx_is_described_as_invalid(tmp_path, case):
    text, names, why = INVALID_ONNX[case]
    path = _onnx_file(tmp_path / f"{case}.onnx", text, names)
    info = inspect(path)
    assert info["valid"] is False and info["problems"][0].startswith(why)
    proc = _cli("inspect", str(path))
    assert proc.returncode == 0 and "valid: no — " + why in " ".join(proc.stdout.split())
    proc = _cli("inspect", str(path), "--strict", "--json", "-")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr and why in " ".join(proc.stderr.split())
    data = json.loads(proc.stdout)
    assert data["valid"] is False and data["problems"] == info["problems"]


def test_unsorted_but_acyclic_onnx_is_valid(tmp_path):
    """ONNX Runtime runs graphs whose nodes are out of order; the checker alone would refuse them."""
    path = _onnx_file(tmp_path / "unsorted.onnx", "g (float[1,4] x) => (float[1,4] y) { y = Neg(a)\n a = Relu(x) }")
    assert inspect(path)["valid"] is True


def test_exported_models_are_valid_under_strict(zoo_onnx, tmp_path):
    proc = _cli("inspect", str(zoo_onnx("lenet")), "--strict")
    assert proc.returncode == 0 and "valid: yes" in proc.stdout


def test_tflite_whose_while_calls_its_own_subgraph_is_invalid(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
    from rt_models import pack, while_counter
    good, bad = tmp_path / "good.tflite", tmp_path / "loop.tflite"
    good.write_bytes(pack(while_counter()))
    bad.write_bytes(pack(while_counter(body=0)))
    assert inspect(good)["valid"] is True
    info = inspect(bad)
    assert info["valid"] is False and info["problems"] == [
        "subgraph 0 calls itself: subgraph 0 'main' (WHILE operator 0, body_subgraph_index) → subgraph 0; "
        "LiteRT would recurse until it crashes"]
    proc = _cli("inspect", str(bad))
    assert proc.returncode == 0 and "valid: no — subgraph 0 calls itself" in proc.stdout
    proc = _cli("inspect", str(bad), "--strict", "--json", "-")
    assert proc.returncode == 3 and json.loads(proc.stdout)["valid"] is False
    assert "is not a valid TFLite model: subgraph 0 calls itself" in " ".join(proc.stderr.split())


def test_tensor_census_counts_initializers_and_quantization_ops_of_every_domain():
    """The bundle manifest's census: initializers by dtype (a Constant node's shape is no weight) and quantization ops
    by bare type, com.microsoft's QGemm included."""
    import numpy as np
    import onnx
    import onnx.parser
    from edgekit.inspect import tensor_census
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
    g (float[1,4] x) => (float[1,4] y) {
      shape = Constant <value = int64[2] {1, 4}> ()
      q = QuantizeLinear(x, s, z)
      g = com.microsoft.QGemm(q, s, z, q, s, z)
      d = DequantizeLinear(g, s, z)
      y = Reshape(d, shape)
    }""")
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                                    onnx.numpy_helper.from_array(np.array(0, np.int8), "z")])
    census = tensor_census("onnx", model.SerializeToString())
    assert census == {"weight_dtypes": {"float32": 1, "int8": 1},
                      "quant_ops": {"QuantizeLinear": 1, "QGemm": 1, "DequantizeLinear": 1}}


def test_tflite_weights_inside_a_while_body_are_counted(tmp_path, monkeypatch):
    """An LSTM compiled as a WHILE loop keeps its weights in the body subgraph: inspect and the bundle census count
    them (they used to count the main subgraph only)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as fb
    from onnx import TensorProto, helper, numpy_helper
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.tflite.lowerings import recurrent
    from edgekit.inspect import tensor_census
    monkeypatch.setattr(recurrent, "UNROLL_MAX_STEPS", 0)
    monkeypatch.setattr(recurrent, "UNROLL_MAX_WEIGHT_BYTES", 0)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("w", (1, 32, 4)), ("r", (1, 32, 8)), ("b", (1, 64)))]
    graph = helper.make_graph([helper.make_node("LSTM", ["x", "w", "r", "b"], ["y", "yh"], hidden_size=8)], "lstm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 1, 1, 8]),
                               helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, 1, 8])], inits)
    data = compile_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])).to_bytes()
    (tmp_path / "lstm.tflite").write_bytes(data)

    flat = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    def constants(subgraphs):
        return sum(1 for sub in subgraphs for t in sub.tensors
                   if flat.buffers[t.buffer].data is not None and len(flat.buffers[t.buffer].data))
    assert len(flat.subgraphs) > 1 and constants(flat.subgraphs[1:]) > 0
    info = inspect(tmp_path / "lstm.tflite")
    assert sum(p["tensors"] for p in info["parameters"].values()) == constants(flat.subgraphs)
    assert sum(tensor_census("tflite", data)["weight_dtypes"].values()) == constants(flat.subgraphs)

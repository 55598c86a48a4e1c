"""Large weights are handled without extra copies: the importer checks and shape-infers a copy of the graph without
them (same graph, same refusals), Gemm's alpha=1 keeps the weight array as it is (alpha != 1 still scales), and a
big model is packed once: the file written is the validated bytes with the final metadata put in place."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from _differential import as_model, assert_converts, model_text
from edgekit.converters.tflite import compile_onnx, importer
from edgekit.converters.tflite.compiler import lower
from edgekit.converters.tflite.registry import load_all
from edgekit.errors import InvalidModelError

R = np.random.default_rng(13)
BIG = (importer.STRIPPED_ELEMENTS // 48 + 1, 48)  # more elements than the importer hands the checker
W = R.standard_normal(BIG).astype(np.float32)
B = R.standard_normal(BIG[0]).astype(np.float32)
SHAPE = np.asarray([2, -1], np.int64)


def _gemm(attrs: str = "") -> onnx.ModelProto:
    text = model_text(f"h = Gemm <transB=1{attrs}> (x, w, b)\ny = Reshape(h, v)", "float[2,48] x", "float y", 13,
                      w=W, b=B, v=SHAPE)
    return as_model(text)


def test_the_checker_reads_a_copy_without_the_large_weights():
    model = _gemm()
    light, stripped = importer._without_weights(model)
    assert stripped == ("w",)
    assert [t.name for t in light.graph.initializer] == ["b", "v"]
    assert "w" in {i.name for i in light.graph.input} and len(model.graph.initializer) == 3  # the original is intact
    onnx.checker.check_model(light)


def test_imported_graph_is_the_same_with_the_weights_left_out_of_the_check():
    graph = importer.import_model(_gemm())
    assert graph.inputs == ["x"]
    assert np.array_equal(graph.values["w"].const, W) and graph.values["y"].shape == (2, BIG[0])


def test_a_weight_whose_data_does_not_match_its_shape_is_refused():
    model = _gemm()
    model.graph.initializer[0].raw_data = W.tobytes()[:-4]
    with pytest.raises(InvalidModelError, match="initializer 'w' cannot be read"):
        importer.import_model(model)


def test_an_input_shape_naming_a_weight_is_refused_as_before():
    from edgekit.errors import UsageError
    with pytest.raises(UsageError, match="not inputs of the model"):
        importer.import_model(_gemm(), {"w": [1, 48]})


def test_gemm_with_alpha_1_uses_the_weight_array_without_a_copy():
    load_all()
    graph = importer.import_model(_gemm())
    tgraph = lower(graph)
    fc = next(op for op in tgraph.ops if op.code == "FULLY_CONNECTED")
    assert np.shares_memory(tgraph.tensors[fc.inputs[1]].data, graph.values["w"].const)


def test_gemm_alpha_1_writes_the_file_that_no_alpha_writes():
    assert compile_onnx(_gemm(", alpha=1.0")).to_bytes() == compile_onnx(_gemm()).to_bytes()


def test_gemm_alpha_other_than_1_still_scales_the_weights():
    compiled = assert_converts(_gemm(", alpha=0.5"), expect_ops={"FULLY_CONNECTED": 1})
    fc = next(op for op in compiled.graph.ops if op.code == "FULLY_CONNECTED")
    assert np.array_equal(compiled.graph.tensors[fc.inputs[1]].data, W * np.float32(0.5))


def _packed_with_room(metadata: dict, room: int) -> tuple:
    from edgekit.converters.tflite import writer
    model = compile_onnx(_gemm()).model
    writer.set_metadata(model, metadata, reserve=room)
    return model, writer.serialize(model)


def test_metadata_put_in_place_gives_the_file_a_fresh_packing_gives():
    from edgekit.converters.tflite import writer
    final = {"edgekit.validation": '{"passed": true}', "edgekit.source": "m.onnx"}
    model, data = _packed_with_room({}, 200)
    pieces = writer.metadata_in_place(data, final)
    assert sum(len(p) for p in pieces) == len(data)
    padding = len("{}") + 200 - len(json.dumps(final, sort_keys=True))
    writer.set_metadata(model, final, reserve=padding)
    assert b"".join(pieces) == writer.serialize(model)


def test_metadata_longer_than_its_room_is_not_put_in_place():
    from edgekit.converters.tflite import writer
    _, data = _packed_with_room({}, 8)
    assert writer.metadata_in_place(data, {"edgekit.labels": "x" * 64}) is None


def test_a_big_model_is_packed_once_and_written_with_its_metadata(tmp_path, monkeypatch):
    from edgekit import convert as convert_mod
    from edgekit.converters.tflite import writer
    from edgekit.runtimes.litert import read_edgekit_metadata
    src = tmp_path / "gemm.onnx"
    onnx.save(_gemm(), str(src))
    small = convert_mod.convert(src, tmp_path / "small.tflite")
    packings = []
    real = writer.serialize
    monkeypatch.setattr(writer, "serialize", lambda model: packings.append(1) or real(model))
    monkeypatch.setattr(convert_mod, "BIG_MODEL_BYTES", 0)  # this model counts as big: room is left, used in place
    big = convert_mod.convert(src, tmp_path / "big.tflite")
    assert len(packings) == 1 and big.passed and big.size_bytes == (tmp_path / "big.tflite").stat().st_size
    small_file, big_file = (tmp_path / "small.tflite").read_bytes(), (tmp_path / "big.tflite").read_bytes()
    assert read_edgekit_metadata(big_file) == read_edgekit_metadata(small_file)
    assert read_edgekit_metadata(big_file)["edgekit.validation"]
    final = read_edgekit_metadata(big_file)
    model = compile_onnx(str(src)).model  # packed afresh with the final metadata and the room that was left over
    writer.set_metadata(model, final, reserve=len("{}") + convert_mod.METADATA_ROOM - len(json.dumps(final,
                                                                                                    sort_keys=True)))
    assert real(model) == big_file


def test_the_onnx_header_is_the_model_without_its_initializers(tmp_path):
    from edgekit.convert import _onnx_header
    model = _gemm()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.helper.set_model_props(model, {"edgekit.labels": "[\"a\", \"b\"]", "edgekit.input_shapes": "{}"})
    onnx.save(model, str(tmp_path / "m.onnx"))
    del model.graph.initializer[:]
    assert _onnx_header(tmp_path / "m.onnx").SerializeToString() == model.SerializeToString()


def test_shape_refinement_on_a_run_time_dim_copies_no_weight(monkeypatch):
    from edgekit.converters.tflite.ir import DYNAMIC
    from edgekit.converters.tflite.passes import constant_folding
    text = model_text("h = MatMul(x, w)\ny = Reshape(h, v)", "float[1,T,48] x", "float y", 13,
                      w=W.T.copy(), v=np.asarray([0, -1, 2], np.int64))
    graph = importer.import_model(as_model(text))
    copied = []
    real = onnx.numpy_helper.from_array
    monkeypatch.setattr(onnx.numpy_helper, "from_array", lambda a, name=None: copied.append(name) or real(a, name))
    constant_folding.run(graph)
    assert "w" not in copied and "v" in copied  # the Reshape's target is still read
    assert graph.values["h"].shape == (1, DYNAMIC, BIG[0])

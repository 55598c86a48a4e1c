"""ONNX external data from strangers: nothing outside the model's directory is read, no huge allocations."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import InvalidModelError
from edgekit.onnx_io import load_onnx


def model_with_external(model_dir, location, offset=0, length=16):
    w = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": str(offset), "length": str(length)}.items():
        w.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = model_dir / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def layout(tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model_dir = tmp_path / "models" / "m"
    model_dir.mkdir(parents=True)
    return model_dir, outside


def _assert_refused(path, outside):
    atime = outside.stat().st_atime_ns
    with pytest.raises(InvalidModelError, match="Refused"):
        load_onnx(path)
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "inspect", str(path)], capture_output=True, text=True)
    assert proc.returncode == 3 and "Refused" in proc.stderr and "Traceback" not in proc.stderr
    assert outside.stat().st_atime_ns == atime  # the sentinel was never read


@pytest.mark.parametrize("location", ["../../secret.bin", "sub/../../../secret.bin", "ABS"])
def test_escaping_locations(layout, location):
    model_dir, outside = layout
    loc = str(outside) if location == "ABS" else location
    _assert_refused(model_with_external(model_dir, loc), outside)


def test_symlink_pointing_outside(layout):
    model_dir, outside = layout
    (model_dir / "data.bin").symlink_to(outside)
    _assert_refused(model_with_external(model_dir, "data.bin"), outside)


def test_hard_link_to_outside(layout):
    model_dir, outside = layout
    os.link(outside, model_dir / "data.bin")
    _assert_refused(model_with_external(model_dir, "data.bin"), outside)


@pytest.mark.parametrize("offset,length", [(0, 1 << 62), (1 << 62, 16), (8, 16), (-1, 4)])
def test_offsets_beyond_file(layout, offset, length):
    model_dir, _ = layout
    (model_dir / "data.bin").write_bytes(b"\0" * 16)
    with pytest.raises(InvalidModelError, match="Refused"):
        load_onnx(model_with_external(model_dir, "data.bin", offset, length))


def test_valid_external_data_loads(layout):
    model_dir, _ = layout
    (model_dir / "data.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model = load_onnx(model_with_external(model_dir, "data.bin"))
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), np.arange(4, dtype=np.float32))


def test_large_models_get_external_data_only_in_their_directory(tmp_path, monkeypatch):
    """Over the protobuf limit (lowered here so a small model stands in for a 2 GB one), weights go to a fresh
    `<name>.data` beside the model: an existing file of that name is replaced, never appended to."""
    import onnxruntime as ort

    import edgekit.onnx_io as onnx_io
    from edgekit.converters.torch_export import export
    monkeypatch.setattr(onnx_io, "EXTERNAL_DATA_THRESHOLD", 10_000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "m.onnx.data").write_bytes(b"stale data that must not be appended to" * 100)
    export("zoo:lenet", out_dir / "m.onnx")
    assert sorted(p.name for p in out_dir.iterdir()) == ["m.onnx", "m.onnx.data"]
    assert b"stale data" not in (out_dir / "m.onnx.data").read_bytes()
    assert (out_dir / "m.onnx").stat().st_size < 20_000
    model = load_onnx(out_dir / "m.onnx")
    assert all(t.data_location == 0 for t in model.graph.initializer)  # loaded back in full
    x = np.zeros((1, 1, 28, 28), np.float32)
    assert ort.InferenceSession(str(out_dir / "m.onnx")).run(None, {"image": x})[0].shape == (1, 10)

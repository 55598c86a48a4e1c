"""Weight buffers are packed once, straight into a builder sized for them: the file holds every buffer's bytes,
16-byte aligned, and is byte-for-byte the file the stock flatbuffers packing writes."""
from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from _differential import as_model, model_text
from edgekit.converters.tflite import compile_onnx, writer

R = np.random.default_rng(7)
WEIGHTS = {"w": R.standard_normal((64, 48)).astype(np.float32), "b": R.standard_normal(64).astype(np.float32),
           "v": np.asarray([2, 8, 8], np.int64)}
TEXT = model_text("h = Gemm <transB=1> (x, w, b)\nz = Relu(h)\ny = Reshape(z, v)", "float[2,48] x", "float y", 13,
                  **WEIGHTS)


def _stock_serialize(model) -> bytes:
    """The schema's own packing (tobytes copies, a 1 MB builder that grows), with the same 16-byte alignment."""
    class Stock(writer._AlignedBuilder):
        CreateNumpyVector = flatbuffers.Builder.CreateNumpyVector
    builder = Stock(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def compiled():
    return compile_onnx(as_model(TEXT))


def test_the_file_is_the_one_stock_packing_writes(compiled):
    model = writer.build_model(compiled.graph, {"k": 1})
    assert writer.serialize(model) == _stock_serialize(model)


def test_a_short_size_hint_still_packs_every_buffer(compiled, monkeypatch):
    model = writer.build_model(compiled.graph, {})
    expected = writer.serialize(model)
    monkeypatch.setattr(writer, "_size_hint", lambda m: 64)  # the builder must grow, copying what it holds
    assert writer.serialize(model) == expected


def test_weight_bytes_are_in_the_file_16_byte_aligned(compiled):
    from ai_edge_litert import schema_py_generated as fb
    data = writer.serialize(writer.build_model(compiled.graph, {}))
    packed = fb.Model.GetRootAs(data, 0)
    blobs = []
    for i in range(packed.BuffersLength()):
        buf = packed.Buffers(i)
        if buf.DataLength() >= 64:
            start = buf.DataAsNumpy().ctypes.data - np.frombuffer(data, np.uint8).ctypes.data
            assert start % 16 == 0, f"buffer {i} starts at {start}"
            blobs.append(buf.DataAsNumpy().tobytes())
    weight = WEIGHTS["w"].tobytes()  # FULLY_CONNECTED takes [out, in]: Gemm's transB=1 weight as it is
    assert weight in blobs and WEIGHTS["b"].tobytes() in blobs

"""FP16 TFLite models: float16 weight buffers widened by DEQUANTIZE, float32 compute; from a float32 model
(precision="fp16") or from a float16 ONNX model as `edgekit quantize --mode fp16` writes it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from _differential import as_model, differential, model_text
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(5)
CONV = model_text("c = Conv <pads=[1,1,1,1]> (x, w, b)\nr = Relu(c)\nf = Flatten(r)\ny = Gemm <transB=1> (f, v, e)",
                  "float[1,3,8,8] x", "float y", 13, w=R.standard_normal((16, 3, 3, 3)).astype(np.float32),
                  b=R.standard_normal(16).astype(np.float32), v=R.standard_normal((10, 1024)).astype(np.float32) * 0.05,
                  e=R.standard_normal(10).astype(np.float32))


def _relative(path, compiled, seed=0) -> float:
    """Worst |LiteRT − ONNX Runtime| over output scale, once every output passed convert's gate for the mode."""
    result = differential(Path(path), compiled=compiled, seed=seed)
    assert not result.failures(), result.failures()
    return max(d.max_abs / d.scale for d in result.diffs)


def _check_fp16_weights(compiled):
    g = compiled.graph
    halves = [t for t in g.tensors.values() if t.data is not None and t.dtype == np.float16]
    assert halves
    assert not [t for t in g.tensors.values() if t.data is not None and t.dtype == np.float32 and t.data.size >= 16]
    widened = {op.inputs[0] for op in g.ops if op.code == "DEQUANTIZE"}
    assert {t.name for t in halves} == widened


def test_float_model_with_fp16_weights(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(as_model(CONV), str(path))
    float_size = len(compile_onnx(path).to_bytes())
    compiled = compile_onnx(path, precision="fp16")
    assert compiled.quantization["mode"] == "fp16"
    _check_fp16_weights(compiled)
    assert len(compiled.to_bytes()) < 0.6 * float_size
    assert _relative(path, compiled) < 2e-3


def _fp16_onnx(float_path, dst):
    from onnxruntime.transformers.float16 import convert_float_to_float16
    onnx.save(convert_float_to_float16(onnx.load(str(float_path)), keep_io_types=True), str(dst))
    return dst


def test_float16_onnx_model_casts_are_folded(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(as_model(CONV), str(path))
    half = _fp16_onnx(path, tmp_path / "conv_fp16.onnx")
    compiled = compile_onnx(half)
    assert compiled.quantization["mode"] == "fp16"
    assert "CAST" not in compiled.op_histogram
    _check_fp16_weights(compiled)
    assert _relative(half, compiled) < 5e-3  # ORT computes in float16, TFLite in float32
    assert _relative(path, compiled) < 5e-3


def test_fp16_on_an_int8_model_is_refused(tmp_path):
    from edgekit.errors import UsageError
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from _qdq import ort_qdq
    qdq = ort_qdq(as_model(CONV), tmp_path)
    with pytest.raises(UsageError, match="already quantized"):
        compile_onnx(qdq, precision="fp16")


@pytest.mark.parametrize("name", ["lstm", "gru", "transformer"])
def test_recurrent_and_transformer_zoo_models_in_fp16(zoo_onnx, name, tmp_path):
    path = zoo_onnx(name)
    float_size = len(compile_onnx(path).to_bytes())
    compiled = compile_onnx(path, precision="fp16")
    assert len(compiled.to_bytes()) < float_size
    for seed in range(3):
        assert _relative(path, compiled, seed) < 5e-3
    half = _fp16_onnx(path, tmp_path / f"{name}_fp16.onnx")  # what edgekit quantize --mode fp16 makes
    compiled = compile_onnx(half)
    assert compiled.quantization["mode"] == "fp16"
    assert _relative(path, compiled) < 1e-2

"""Dynamic-range (hybrid) TFLite models: int8 weights, float activations; from onnxruntime's dynamic quantization
(MatMulInteger / ConvInteger / DynamicQuantizeLSTM patterns) or from a float32 model with precision="dynamic"."""
from __future__ import annotations

import contextlib
import io
import logging

from pathlib import Path

import numpy as np
import onnx
import pytest

from _differential import as_model, differential, model_text
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(11)
MLP = model_text("h = Gemm <transB=1> (x, w1, b1)\nr = Relu(h)\ny = MatMul(r, w2)", "float[2,64] x", "float y", 13,
                 w1=R.standard_normal((48, 64)).astype(np.float32) * 0.2, b1=R.standard_normal(48).astype(np.float32),
                 w2=R.standard_normal((48, 32)).astype(np.float32) * 0.2)
CONV = model_text("c = Conv <pads=[1,1,1,1]> (x, w, b)\ny = Relu(c)", "float[1,8,8,8] x", "float y", 13,
                  w=R.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.2, b=R.standard_normal(16).astype(np.float32))
# per tensor (ORT's ConvInteger default), LiteRT's hybrid depthwise kernel read a scale per channel past the one given
DEPTHWISE = model_text("c = Conv <pads=[1,1,1,1], group=16> (x, w, b)\ny = Relu(c)", "float[1,16,8,8] x", "float y", 13,
                       w=R.standard_normal((16, 1, 3, 3)).astype(np.float32), b=R.standard_normal(16).astype(np.float32))


def ort_dynamic(model: onnx.ModelProto, path, per_channel: bool) -> str:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, dst = path / "float.onnx", path / f"dynamic_{per_channel}.onnx"
    onnx.save(model, str(src))
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_dynamic(str(src), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm", "Conv"])
    finally:
        logging.getLogger().setLevel(level)
    return str(dst)


def _relative(path, compiled, seed=0) -> float:
    """Worst |LiteRT − ONNX Runtime| over output scale, once every output passed convert's gate for the mode."""
    result = differential(Path(path), compiled=compiled, seed=seed)
    assert not result.failures(), result.failures()
    return max(d.max_abs / d.scale for d in result.diffs)


def _hybrid_ops(compiled) -> list:
    g = compiled.graph
    return [op for op in g.ops if op.code in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
            and g.tensors[op.inputs[0]].dtype == np.float32 and g.tensors[op.inputs[1]].dtype == np.int8]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("text", [MLP, CONV, DEPTHWISE], ids=["mlp", "conv", "depthwise"])
def test_ort_dynamic_model_becomes_hybrid_ops(text, per_channel, tmp_path):
    path = ort_dynamic(as_model(text), tmp_path, per_channel)
    compiled = compile_onnx(path)
    assert compiled.quantization["mode"] == "dynamic"
    hybrid = _hybrid_ops(compiled)
    assert hybrid, compiled.op_histogram
    for op in hybrid:
        w = compiled.graph.tensors[op.inputs[1]]
        assert not any(w.quant["zero_point"])
        if op.code == "FULLY_CONNECTED":
            assert op.options.get("asymmetricQuantizeInputs") is True
        if op.code == "DEPTHWISE_CONV_2D":
            assert len(w.quant["scale"]) == w.shape[3] and w.quant["axis"] == 3
    assert not {"QUANTIZE", "DEQUANTIZE", "CAST"} & set(compiled.op_histogram), compiled.op_histogram
    # TFLite quantizes activations per row, ORT per tensor: close, not bit-equal
    assert _relative(path, compiled) < 1e-2


def test_float_model_with_precision_dynamic(tmp_path):
    model = as_model(CONV)
    path = tmp_path / "conv.onnx"
    onnx.save(model, str(path))
    float_size = len(compile_onnx(path).to_bytes())
    compiled = compile_onnx(path, precision="dynamic")
    assert compiled.quantization["mode"] == "dynamic"
    assert len(_hybrid_ops(compiled)) == 1
    w = compiled.graph.tensors[_hybrid_ops(compiled)[0].inputs[1]]
    assert len(w.quant["scale"]) == 16 and w.quant["axis"] == 0
    assert len(compiled.to_bytes()) < 0.5 * float_size
    assert _relative(path, compiled) < 2e-2


def test_int8_precision_on_float_model_is_a_usage_error(tmp_path):
    from edgekit.errors import UsageError
    path = tmp_path / "mlp.onnx"
    onnx.save(as_model(MLP), str(path))
    with pytest.raises(UsageError, match="edgekit quantize"):
        compile_onnx(path, precision="int8")


@pytest.mark.parametrize("name", ["lstm", "gru", "transformer"])
def test_recurrent_and_transformer_zoo_models_in_dynamic_range(zoo_onnx, name):
    path = zoo_onnx(name)
    float_size = len(compile_onnx(path).to_bytes())
    compiled = compile_onnx(path, precision="dynamic")
    assert _hybrid_ops(compiled)
    assert len(compiled.to_bytes()) < float_size
    for seed in range(3):
        assert _relative(path, compiled, seed) < 2e-2  # vs the float ONNX model


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_ort_dynamic_zoo_models(zoo_onnx, name, tmp_path):
    """edgekit quantize --mode dynamic's output: DynamicQuantizeLSTM, MatMulInteger, quantized embedding tables."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    dst = tmp_path / f"{name}_dynamic.onnx"
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(zoo_onnx(name)), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(level)
    compiled = compile_onnx(dst)
    assert compiled.quantization["mode"] == "dynamic" and _hybrid_ops(compiled)
    assert _relative(str(dst), compiled) < 2e-2  # vs ORT running the dynamic-quantized model

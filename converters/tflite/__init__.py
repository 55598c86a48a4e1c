"""The ONNX → TFLite compiler (float32, FP16, dynamic-range and full-integer INT8): a small IR, rewrite passes, one lowering per ONNX op, and a
flatbuffer writer over the schema's object API. No TensorFlow needed.

    from edgekit.converters.tflite import compile_onnx
    compiled = compile_onnx("model.onnx", input_shapes={"x": (1, 3, 64, 64)})
    open("model.tflite", "wb").write(compiled.to_bytes())
"""
from __future__ import annotations

__all__ = ["compile_onnx", "supported_ops", "describe_tflite"]


def compile_onnx(model_or_path, input_shapes=None, nhwc_io: bool = False, metadata: dict | None = None,
                 source: str = "the model", int8_io: bool = False, precision: str = "auto", float_nodes=()):
    from edgekit.converters.tflite.compiler import compile_onnx as _compile
    return _compile(model_or_path, input_shapes, nhwc_io, metadata, source, int8_io, precision, float_nodes)


def supported_ops() -> dict:
    """ONNX op type → {"since": [opsets], "emits": [TFLite builtins]} for every registered lowering."""
    from edgekit.converters.tflite.registry import onnx_ops
    return {op: {"since": [v.since for v in versions], "emits": sorted(set().union(*(v.emits for v in versions)))}
            for op, versions in onnx_ops().items()}


def describe_tflite(path) -> dict:
    from edgekit.converters.tflite.inspect import describe_tflite as _describe
    return _describe(path)

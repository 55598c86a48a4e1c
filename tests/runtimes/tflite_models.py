"""Tiny .tflite models built with LiteRT's schema object API, so runtime tests need no converter."""
from __future__ import annotations

import json

import numpy as np


def _buffer(schema, data: np.ndarray | None):
    buf = schema.BufferT()
    if data is not None:
        buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return buf


def _tensor(schema, name, shape, buffer, signature=None):
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    if signature is not None:
        t.shapeSignature = list(signature)
    t.type = schema.TensorType.FLOAT32
    t.buffer = buffer
    return t


def fully_connected(weights: np.ndarray, bias: np.ndarray | None = None, *, dynamic_batch: bool = False,
                    relu: bool = False, metadata: dict | None = None, input_name: str = "x",
                    output_name: str = "y") -> bytes:
    """y = x @ weights.T + bias (optionally ReLU) as a FULLY_CONNECTED model; x is [1, in] (or [-1, in])."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    out_f, in_f = weights.shape
    bias = np.zeros(out_f, np.float32) if bias is None else bias
    buffers = [_buffer(schema, None), _buffer(schema, None), _buffer(schema, weights.astype(np.float32)),
               _buffer(schema, bias.astype(np.float32)), _buffer(schema, None)]
    sig_in = [-1, in_f] if dynamic_batch else None
    sig_out = [-1, out_f] if dynamic_batch else None
    tensors = [_tensor(schema, input_name, [1, in_f], 1, sig_in), _tensor(schema, "w", [out_f, in_f], 2),
               _tensor(schema, "b", [out_f], 3), _tensor(schema, output_name, [1, out_f], 4, sig_out)]
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    opts = schema.FullyConnectedOptionsT()
    opts.fusedActivationFunction = schema.ActivationFunctionType.RELU if relu else schema.ActivationFunctionType.NONE
    op.builtinOptions = opts
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = tensors, [0], [3], [op], "main"
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sub], buffers
    model.description = "edgekit test model"
    if metadata is not None:
        buffers.append(_buffer(schema, np.frombuffer(json.dumps(metadata).encode(), np.uint8)))
        md = schema.MetadataT()
        md.name, md.buffer = "edgekit", len(buffers) - 1
        model.metadata = [md]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())

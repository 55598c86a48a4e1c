"""Small ONNX and TFLite models written inline (onnx.parser text; LiteRT schema object API) for the runtime tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def onnx_model(text: str, path: Path, metadata: dict | None = None) -> Path:
    """Parse ONNX text (onnx.parser syntax), check it, save it to `path`."""
    import onnx
    from onnx import parser
    model = parser.parse_model(text)
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _floats(values) -> str:
    return ", ".join(f"{float(v):.6f}" for v in np.ravel(values))


def conv_model(path: Path, *, nhwc: bool = False, scale: float = 1.0, seed: int = 0, batch: str = "1") -> Path:
    """x[batch,3,8,8] → Conv(3→4, 3x3, pad 1) → Relu → y[batch,4,8,8]; `nhwc` wraps it in channels-last I/O."""
    w = np.random.default_rng(seed).standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3 * scale
    if nhwc:
        text = f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[{batch},8,8,3] x) => (float[{batch},8,8,4] y) {{
            w = Constant<value = float[4,3,3,3] {{{_floats(w)}}}>()
            xc = Transpose<perm = [0, 3, 1, 2]>(x)
            c = Conv<pads = [1, 1, 1, 1]>(xc, w)
            r = Relu(c)
            y = Transpose<perm = [0, 2, 3, 1]>(r)
        }}"""
        return onnx_model(text, path, {"edgekit.io_layouts": {"x": "NHWC", "y": "NHWC"}})
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[{batch},3,8,8] x) => (float[{batch},4,8,8] y) {{
        w = Constant<value = float[4,3,3,3] {{{_floats(w)}}}>()
        c = Conv<pads = [1, 1, 1, 1]>(x, w)
        y = Relu(c)
    }}"""
    return onnx_model(text, path)


def classifier_model(path: Path, *, seed: int = 0, noise: float = 0.0, out_name: str = "logits",
                     dynamic: bool = False) -> Path:
    """x[N,16] → Gemm(16→10) → logits[N,10] (N dynamic, labelled 'batch', when `dynamic`)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 10)).astype(np.float32)
    w += noise * np.random.default_rng(seed + 100).standard_normal(w.shape).astype(np.float32)
    n = "batch" if dynamic else "1"
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[{n},16] x) => (float[{n},10] {out_name}) {{
        w = Constant<value = float[16,10] {{{_floats(w)}}}>()
        {out_name} = MatMul(x, w)
    }}"""
    return onnx_model(text, path)



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


def while_counter(*, cond: int = 1, body: int = 2):
    """A ModelT counting y = x + 1 until y >= 10 with WHILE (subgraph 0 'main', 1 'cond', 2 'body'); `cond` and
    `body` say which subgraphs the WHILE calls. Edit the returned ModelT, then `pack` it."""
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name, dtype="FLOAT32", buffer=0):
        t = schema.TensorT()
        t.name, t.type, t.shape, t.buffer = name, getattr(schema.TensorType, dtype), [1], buffer
        return t

    def op(code, ins, outs, options=None, kind=None):
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, ins, outs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = getattr(schema.BuiltinOptions, kind), options
        return o

    def subgraph(name, tensors, inputs, outputs, operators):
        sg = schema.SubGraphT()
        sg.name, sg.tensors, sg.inputs, sg.outputs, sg.operators = name, tensors, inputs, outputs, operators
        return sg

    model = schema.ModelT()
    model.version = 3
    model.buffers = [_buffer(schema, None), _buffer(schema, np.float32([10])), _buffer(schema, np.float32([1]))]
    model.operatorCodes = []
    for name in ("WHILE", "LESS", "ADD", "IF", "CALL_ONCE"):
        code = schema.OperatorCodeT()
        code.builtinCode = getattr(schema.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        code.version = 1
        model.operatorCodes.append(code)
    loop = schema.WhileOptionsT()
    loop.condSubgraphIndex, loop.bodySubgraphIndex = cond, body
    model.subgraphs = [
        subgraph("main", [tensor("x"), tensor("y")], [0], [1], [op(0, [0], [1], loop, "WhileOptions")]),
        subgraph("cond", [tensor("a"), tensor("ten", buffer=1), tensor("b", "BOOL")], [0], [2], [op(1, [0, 1], [2])]),
        subgraph("body", [tensor("a"), tensor("one", buffer=2), tensor("a1")], [0], [2],
                 [op(2, [0, 1], [2], schema.AddOptionsT(), "AddOptions")]),
    ]
    return model


def pack(model) -> bytes:
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())

"""Serialise a TflGraph with the schema's object API (`ModelT` ... `Pack`, file identifier TFL3).

The file carries one SignatureDef, 'serving_default', keyed by the ONNX input and output names (LiteRT's signature
runner and tools built on signatures expect one; litert-torch and the TensorFlow converter write it under that
key). Graph inputs, outputs and constants keep their ONNX names; every other tensor an operator writes is named
'<PyTorch module path>/<ONNX name>' when the op came from a node that records its module (edgekit.module), so a
profile or a graph viewer reads like the PyTorch model.
"""
from __future__ import annotations

import json

import flatbuffers
import numpy as np

from edgekit.converters.tflite.tfl import TflGraph, options_table

METADATA_NAME = "edgekit"
SIGNATURE_KEY = "serving_default"
TENSOR_TYPES = {"float32": "FLOAT32", "float16": "FLOAT16", "int32": "INT32", "int64": "INT64", "int8": "INT8",
                "uint8": "UINT8", "bool": "BOOL", "int16": "INT16", "float64": "FLOAT64", "uint16": "UINT16", "uint32": "UINT32",
                "uint64": "UINT64"}


class _AlignedBuilder(flatbuffers.Builder):
    """Aligns large byte vectors (weight buffers) to 16 bytes, as TFLite's own converter does, and copies each weight
    buffer once, from the array straight into its place.

    The stock builder copies a buffer twice (`tobytes`, then into its byte array) and starts at 1 MB, doubling and
    copying everything written so far each time it fills: VGG-11's 531 MB took 21 s to pack. `serialize` sizes the
    builder for every buffer up front, so packing runs at memory-copy speed."""

    def StartVector(self, elemSize, numElems, alignment):  # noqa: N802 - flatbuffers' name
        if elemSize == 1 and numElems >= 64:
            alignment = 16
        return super().StartVector(elemSize, numElems, alignment)

    def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' name
        if x.dtype != np.uint8 or x.ndim != 1 or not x.flags.c_contiguous:
            return super().CreateNumpyVector(x)
        self.StartVector(1, x.size, 1)
        self.head = self.head - x.size
        self.Bytes[self.head:self.head + x.size] = memoryview(x)
        self.vectorNumElems = x.size
        return self.EndVector()


def schema():
    from ai_edge_litert import schema_py_generated as fb
    return fb


def build_model(g: TflGraph, metadata: dict | None = None, description: str = "edgekit"):
    """TflGraph → ModelT (the main subgraph, then `g.subgraphs` in order: a WHILE's cond/body indices count from
    the main graph's 0), with `metadata` stored as JSON in a buffer named 'edgekit'."""
    fb = schema()
    model = fb.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [fb.BufferT()]
    model.operatorCodes, code_index = [], {}
    model.subgraphs = [_subgraph(fb, sub, model, code_index, "main" if i == 0 else f"sub{i}")
                       for i, sub in enumerate([g, *g.subgraphs])]
    model.signatureDefs = [_signature(fb, g, {name: i for i, name in enumerate(g.tensors)})]
    set_metadata(model, metadata or {})
    return model


def _subgraph(fb, g: TflGraph, model, code_index: dict, name: str):
    index = {tensor: i for i, tensor in enumerate(g.tensors)}
    names = tensor_names(g)
    sub = fb.SubGraphT()
    sub.name = name
    sub.tensors = [_tensor(fb, t, model.buffers, names[tensor]) for tensor, t in g.tensors.items()]
    sub.inputs = [index[n] for n in g.inputs]
    sub.outputs = [index[n] for n in g.outputs]
    sub.operators = [_operator(fb, op, index, model.operatorCodes, code_index) for op in g.ops]
    return sub


def tensor_names(g: TflGraph) -> dict:
    """Tensor name in the graph → name in the file: op outputs prefixed by their PyTorch module path.

    An op inserted by a pass after lowering (origin 'node/requantize', ...) takes the module of the node its
    origin starts with. Names stay unique; graph inputs, outputs and constants are never renamed."""
    by_origin = {op.origin: op.module for op in g.ops if op.module}
    keep = set(g.inputs) | set(g.outputs)
    names = {name: name for name in g.tensors}
    taken = set(g.tensors)
    for op in g.ops:
        module = op.module or _module_of_origin(op.origin, by_origin)
        if not module:
            continue
        for out in op.outputs:
            t = g.tensors.get(out)
            if out in keep or t is None or t.data is not None or names[out] != out or module in out.split("/"):
                continue
            name, i = f"{module}/{out}", 1
            while name in taken:
                name, i = f"{module}/{out}_{i}", i + 1
            names[out] = name
            taken.add(name)
    return names


def _module_of_origin(origin: str, by_origin: dict) -> str:
    while origin:
        if origin in by_origin:
            return by_origin[origin]
        origin = origin.rpartition("/")[0]
    return ""


def _signature(fb, g: TflGraph, index: dict):
    """The one SignatureDef: ONNX input/output names → tensors of subgraph 0."""
    def tensor_map(name):
        entry = fb.TensorMapT()
        entry.name, entry.tensorIndex = name, index[name]
        return entry
    sig = fb.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    sig.inputs = [tensor_map(n) for n in g.inputs]
    sig.outputs = [tensor_map(n) for n in g.outputs]
    return sig


def set_metadata(model, metadata: dict, reserve: int = 0) -> None:
    """Replace the 'edgekit' metadata buffer of a ModelT with JSON of `metadata`, followed by `reserve` spaces (room
    for metadata_in_place to put longer JSON in the packed file; JSON readers skip trailing whitespace)."""
    fb = schema()
    buf = fb.BufferT()
    buf.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode() + b" " * reserve, dtype=np.uint8)
    old = [m for m in (model.metadata or []) if m.name in (METADATA_NAME, METADATA_NAME.encode())]
    if old:  # its buffer is reused: replacing the metadata leaves no orphaned buffer in the file
        model.buffers[old[0].buffer] = buf
        return
    model.buffers.append(buf)
    model.metadata = list(model.metadata or [])
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(entry)


def metadata_in_place(data: bytes, metadata: dict) -> list | None:
    """The packed model `data` with its 'edgekit' metadata replaced by JSON of `metadata` (padded with spaces to the
    buffer's length), as [before, JSON, after] pieces that share `data`'s memory; None if it does not fit. A big
    model's weights are then packed once for validation and the file written is the same bytes with its metadata."""
    fb = schema()
    model = fb.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() != METADATA_NAME.encode():
            continue
        table = model.Buffers(entry.Buffer())._tab
        field = table.Offset(4)  # Buffer.data
        if not field:
            return None
        start = table.Vector(field)
        end = start + table.VectorLen(field)
        text = json.dumps(metadata, sort_keys=True).encode()
        if len(text) > end - start:
            return None
        view = memoryview(data)
        return [view[:start], text + b" " * (end - start - len(text)), view[end:]]
    return None


def serialize(model) -> bytes:
    builder = _AlignedBuilder(_size_hint(model))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(memoryview(builder.Bytes)[builder.Head():])  # one copy (Output() slices, bytes() copies again)


def _size_hint(model) -> int:
    """Bytes the packed model will take, generously: every buffer with its alignment, plus room for the tables (a
    short guess only costs one doubling of the builder)."""
    data = sum(len(b.data) + 16 for b in model.buffers if b.data is not None)
    tables = sum(len(s.tensors or []) + len(s.operators or []) for s in model.subgraphs)
    return min(data + (1 << 20) + 1024 * tables, flatbuffers.Builder.MAX_BUFFER_SIZE)


def _tensor(fb, t, buffers, name: str):
    tensor = fb.TensorT()
    tensor.name = name
    tensor.type = getattr(fb.TensorType, TENSOR_TYPES[np.dtype(t.dtype).name])
    tensor.shape = [int(d) if int(d) >= 0 else 1 for d in t.shape]  # a run-time dim is 1 until resized; 0 stays 0
    if any(int(d) < 0 for d in t.shape):
        tensor.shapeSignature = [int(d) for d in t.shape]
    tensor.buffer = 0
    if t.data is not None:
        buf = fb.BufferT()
        buf.data = np.ascontiguousarray(t.data, dtype=t.dtype).reshape(-1).view(np.uint8)  # a view, not a copy
        buffers.append(buf)
        tensor.buffer = len(buffers) - 1
    if t.quant:
        q = fb.QuantizationParametersT()
        q.scale = [float(s) for s in t.quant["scale"]]
        q.zeroPoint = [int(z) for z in t.quant["zero_point"]]
        q.quantizedDimension = int(t.quant.get("axis", 0))
        tensor.quantization = q
    return tensor


def _operator(fb, op, index, codes, code_index):
    builtin = getattr(fb.BuiltinOperator, op.code)
    if builtin not in code_index:
        oc = fb.OperatorCodeT()
        oc.builtinCode = builtin
        oc.deprecatedBuiltinCode = min(builtin, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        oc.version = 1
        code_index[builtin] = len(codes)
        codes.append(oc)
    o = fb.OperatorT()
    o.opcodeIndex = code_index[builtin]
    o.inputs = [index[n] if n else -1 for n in op.inputs]
    o.outputs = [index[n] for n in op.outputs]
    table = options_table(op.code)
    if table:
        options = getattr(fb, table + "T")()
        for key, value in op.options.items():
            if not hasattr(options, key):
                raise ValueError(f"{op.code} has no option '{key}' (from {op.origin})")
            setattr(options, key, value)
        o.builtinOptionsType = getattr(fb.BuiltinOptions, table)
        o.builtinOptions = options
    elif op.options:
        raise ValueError(f"{op.code} takes no options, got {op.options} (from {op.origin})")
    return o

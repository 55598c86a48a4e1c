"""Describe a .tflite file: I/O, op histogram, tensor and parameter counts by dtype, per-tensor quantization,
edgekit metadata."""
from __future__ import annotations

import json
import os

import numpy as np


def describe_tflite(path) -> dict:
    from ai_edge_litert import schema_py_generated as fb
    from edgekit.errors import InvalidModelError

    from edgekit.runtimes.tflite_verify import tflite_problems

    data = path if isinstance(path, (bytes, bytearray)) else open(os.fspath(path), "rb").read()
    problems = tflite_problems(bytes(data), "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path))
    try:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    except Exception as exc:
        raise InvalidModelError(f"Cannot parse '{path}' as a TFLite flatbuffer ({exc}).", hint="Re-convert the model.") from exc
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    ops_by_code = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    sub = model.subgraphs[0]
    ops: dict = {}
    for op in sub.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        name = ops_by_code.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        ops[name] = ops.get(name, 0) + 1
    by_dtype: dict = {}
    for t in _all_tensors(model):  # a WHILE body's weights are the model's weights too
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        size = 0 if buf is None else (len(buf.data) if buf.data is not None else 0) or getattr(buf, "size", 0) or 0
        if size == 0:  # no constant data (inline, or stored past the flatbuffer: offset/size)
            continue
        entry = by_dtype.setdefault(types[t.type].lower(), {"tensors": 0, "parameters": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["parameters"] += int(np.prod(t.shape)) if t.shape is not None and len(t.shape) else 1
        entry["bytes"] += size
    from edgekit.runtimes.litert import read_edgekit_metadata
    metadata = read_edgekit_metadata(bytes(data), others=True)
    layouts = json.loads(metadata.get("edgekit.io_layouts", "{}") or "{}")
    return {
        "format": "tflite",
        "inputs": [_io(sub.tensors[i], types, layouts) for i in sub.inputs],
        "outputs": [_io(sub.tensors[i], types, layouts) for i in sub.outputs],
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "op_count": sum(ops.values()),
        "tensor_count": len(sub.tensors),
        "parameters": sum(e["parameters"] for e in by_dtype.values()),
        "parameter_bytes": sum(e["bytes"] for e in by_dtype.values()),
        "by_dtype": by_dtype,
        "tensor_quantization": _tensor_quantization(model, types, metadata),
        "metadata": metadata,
        "signatures": _signatures(model, sub),
        "size_bytes": len(data),
        "valid": not problems,
        "problems": problems,
        "checks": ["edgekit's TFLite verifier (bounds, subgraph calls, tensor writers, operator order)"],
    }


def _all_tensors(model) -> list:
    """The tensors of every subgraph (control-flow bodies and conditions included), main graph first."""
    return [t for sub in model.subgraphs or [] for t in sub.tensors or []]


def _signatures(model, sub) -> list[dict]:
    """SignatureDefs: key → {input key: tensor name}, {output key: tensor name}."""
    out = []
    for sig in model.signatureDefs or []:
        tensors = model.subgraphs[sig.subgraphIndex].tensors

        def names(maps):
            return {_text(m.name): _text(tensors[m.tensorIndex].name) for m in maps or []}
        out.append({"key": _text(sig.signatureKey), "subgraph": sig.subgraphIndex, "inputs": names(sig.inputs),
                    "outputs": names(sig.outputs)})
    return out


def _text(raw) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _io(t, types, layouts) -> dict:
    name = t.name.decode() if isinstance(t.name, bytes) else t.name
    shape = [int(d) for d in (t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape)]
    q = t.quantization
    quant = None
    if q is not None and q.scale is not None and len(q.scale):
        quant = {"scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zeroPoint],
                 "axis": int(q.quantizedDimension)}
    return {"name": name, "dtype": types[t.type].lower(), "shape": [d if d >= 0 else None for d in shape],
            "layout": layouts.get(name), "quantization": quant}


def _tensor_quantization(model, types, metadata) -> dict:
    """Every quantized tensor of every subgraph (dtype, per-tensor or per-channel parameters, constant or not), with
    counts; the compiler's mode, float islands and int8 I/O from the edgekit metadata when present."""
    tensors, counts = [], {"quantized": 0, "per_channel": 0, "per_tensor": 0, "constant": 0, "activations": 0}
    for t in _all_tensors(model):
        q = t.quantization
        if q is None or q.scale is None or not len(q.scale):
            continue
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        const = buf is not None and buf.data is not None and len(buf.data) > 0
        scales = [float(x) for x in q.scale]
        per_channel = len(scales) > 1
        counts["quantized"] += 1
        counts["per_channel" if per_channel else "per_tensor"] += 1
        counts["constant" if const else "activations"] += 1
        name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else t.name
        entry = {"name": name, "dtype": types[t.type].lower(), "constant": const,
                 "scale": scales if per_channel else scales[0],
                 "zero_point": [int(z) for z in q.zeroPoint] if per_channel else int(q.zeroPoint[0])}
        if per_channel:
            entry["axis"] = int(q.quantizedDimension)
        tensors.append(entry)
    try:
        compiled = json.loads(metadata.get("edgekit.quantization", "{}") or "{}")
    except (TypeError, ValueError):
        compiled = {}
    return {**counts, "mode": compiled.get("mode"), "float_islands": compiled.get("islands", []),
            "int8_io": compiled.get("io", {}), "tensors": tensors}

"""`edgekit inspect`: what a model file holds — I/O, ops, parameters, quantization, MACs, metadata."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from edgekit.fileio import sniff_format
from edgekit.errors import UsageError

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
                 "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QGemm"}
DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"}


def is_quantization_op(op_type: str) -> bool:
    """Whether an ONNX op (bare type, no domain) quantizes, dequantizes or computes on quantized tensors."""
    return (op_type in QDQ_OPS | QOPERATOR_OPS | DYNAMIC_OPS or op_type.startswith("QLinear")
            or op_type.endswith("Integer") or "quant" in op_type.lower())


def tensor_census(fmt: str, data: bytes) -> dict:
    """The tensor counts a bundle manifest records, from the same counts `inspect` reports (without its checks
    and MAC estimate): weight tensors per dtype, and the quantization ops by type (ONNX) or the number of quantized
    tensors (TFLite, every subgraph). ONNX weights are the initializers: Constant nodes, which `inspect` adds to
    its parameter counts, hold mostly shapes. Needs onnx / ai_edge_litert for the format; ImportError without it."""
    if fmt == "onnx":
        import onnx
        ops, params = _onnx_counts(onnx.load_model_from_string(data), constants=False)
        quant_ops: dict[str, int] = {}
        for op, count in ops.items():
            bare = op.rpartition(".")[2]  # `inspect` names ops outside the default domain `domain.Op`
            if is_quantization_op(bare):
                quant_ops[bare] = quant_ops.get(bare, 0) + count
        return {"weight_dtypes": {dtype: p["tensors"] for dtype, p in params.items()}, "quant_ops": quant_ops}
    from edgekit.converters.tflite.inspect import describe_tflite
    info = describe_tflite(data)
    return {"weight_dtypes": {dtype: d["tensors"] for dtype, d in info["by_dtype"].items()},
            "quantized_tensors": info["tensor_quantization"]["quantized"]}


def inspect(path: str | Path) -> dict:
    """Describe a .onnx or .tflite model as a JSON-ready dict.

    `valid` says whether the model passed the checks named in `checks` (ONNX: edgekit's graph checks and
    onnx.checker; TFLite: edgekit's verifier); `problems` says why not. A file too broken to describe at all
    raises InvalidModelError instead."""
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "onnx":
        info = _inspect_onnx(path)
    elif fmt == "tflite":
        from edgekit.deps import require
        try:
            from edgekit.converters.tflite.inspect import describe_tflite
        except ImportError as exc:
            require("ai_edge_litert", "Inspecting TFLite models")
            raise UsageError(f"Inspecting .tflite files is not available in this install ({exc}).") from exc
        info = _common_tflite_schema(describe_tflite(path))
    else:
        raise UsageError(f"'{path}' is a {fmt} file; inspect reads .onnx and .tflite models.",
                         hint="Export it first: edgekit export SPEC -o model.onnx.")
    info["file"] = str(path)
    info["format"] = fmt
    info["file_size"] = path.stat().st_size
    return info


def invalid_model_error(info: dict):
    """The InvalidModelError for an inspected model that is not valid (`edgekit inspect --strict`)."""
    from edgekit.errors import InvalidModelError
    return InvalidModelError(f"'{info['file']}' is not a valid {'TFLite' if info['format'] == 'tflite' else 'ONNX'} model: "
                             + "; ".join(info["problems"]) + ".",
                             hint="Re-export or re-convert it; other tools and runtimes would refuse it or "
                                  "compute garbage.")


def _common_tflite_schema(info: dict) -> dict:
    """describe_tflite's figures under the keys inspect uses for every format."""
    by_dtype = info.get("by_dtype", {})
    info["parameter_count"] = info.get("parameters", 0)
    info["parameters"] = {dtype: {"count": d["parameters"], "bytes": d["bytes"], "tensors": d["tensors"]}
                          for dtype, d in by_dtype.items()}
    info["nodes"] = info.get("op_count")
    if "quantization" not in info:
        weights = set(by_dtype)
        info["quantization"] = ("INT8" if {"int8", "uint8"} & weights and "float32" not in weights else
                                "dynamic-range / mixed INT8" if {"int8", "uint8"} & weights else
                                "fp16 weights" if "float16" in weights else "float")
    return info


def _dims(type_proto) -> list:
    t = type_proto.tensor_type
    if not t.HasField("shape"):
        return ["?"]
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def _inspect_onnx(path: Path) -> dict:
    from onnx import helper

    from edgekit.macs import estimate_macs, macs_by_op_type
    from edgekit.onnx_io import ONNX_CHECKS, load_onnx, model_problems

    model = load_onnx(path)
    problems = model_problems(model)
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}

    def io(values):
        return [{"name": v.name, "dtype": helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
                 if v.type.tensor_type.elem_type else "?", "shape": _dims(v.type)} for v in values]

    ops, params = _onnx_counts(model)
    macs = estimate_macs(model) if not problems else {}  # shapes of an invalid graph mean nothing
    meta = {p.key: p.value for p in model.metadata_props}
    return {
        "inputs": io([v for v in graph.input if v.name not in initializer_names]),
        "outputs": io(graph.output),
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": len(graph.node),
        "ops": dict(ops.most_common()),
        "parameters": params,
        "parameter_count": sum(p["count"] for p in params.values()),
        "quantization": _quantization_status(ops, params),
        "macs": sum(v for _, v in macs.values()),
        "macs_by_op": macs_by_op_type(macs),
        "metadata": {k: _maybe_json(v) for k, v in meta.items()},
        "valid": not problems,
        "problems": problems,
        "checks": list(ONNX_CHECKS),
    }


def _onnx_counts(model, constants: bool = True) -> tuple[Counter, dict[str, dict]]:
    """Op histogram (`domain.Op` outside the default domain) and parameters per dtype (count of values, bytes,
    tensors): the initializers, and with `constants` the Constant nodes' tensors too (mostly shapes and scalars)."""
    from onnx import helper

    graph = model.graph
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node)
    params: dict[str, dict] = {}
    tensors = list(graph.initializer) + [a.t for n in graph.node if constants and n.op_type == "Constant"
                                         for a in n.attribute if a.name == "value"]
    for t in tensors:
        dtype = helper.tensor_dtype_to_np_dtype(t.data_type).name
        count = int(np.prod(t.dims)) if len(t.dims) else 1
        entry = params.setdefault(dtype, {"count": 0, "bytes": 0, "tensors": 0})
        entry["count"] += count
        entry["bytes"] += count * np.dtype(dtype).itemsize
        entry["tensors"] += 1
    return ops, params


def _quantization_status(ops: Counter, params: dict) -> str:
    names = set(ops)
    if names & QOPERATOR_OPS:
        return "QOperator INT8"
    if names & QDQ_OPS:
        return "QDQ INT8"
    if names & DYNAMIC_OPS:
        return "dynamic INT8"
    if "float16" in params and params["float16"]["count"] > params.get("float32", {}).get("count", 0):
        return "fp16"
    return "float"


def _maybe_json(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value

"""Making quantized candidates with onnxruntime.quantization: a prepared float model, one calibration pass
(cached), then static QDQ/QOperator, dynamic INT8 or FP16 models with chosen layers kept in float."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgekit.deps import require
from edgekit.errors import UsageError

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul", "QGemm", "MatMulIntegerToFloat",
                 "DynamicQuantizeMatMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearAveragePool",
                 "QLinearGlobalAveragePool", "MatMulNBits"}
TYPE_NAMES = {"int8": "QInt8", "uint8": "QUInt8"}
CALIB_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
CALIB_CHUNK = 16  # batches per calibrator pass: ORT's histogram calibrators hold one pass's outputs in memory
#: fp16 activations beyond this are blocked (kept float32): 65504 is float16's largest finite value
FP16_SAFE_MAX = 30000.0
#: static: an activation whose calibrated magnitude reaches this holds fill values, not data (Hugging Face attention
#: masks add torch.finfo(float32).min): one 8-bit step of its range swallows every real value beside it, and LiteRT's
#: int8 ADD cannot even form its rescaling multiplier (2^20 x scale overflows float32). Such tensors stay float32.
FILL_MAGNITUDE = 1e30


@dataclass(frozen=True)
class Plan:
    """What to build: the mode and its settings, and which nodes stay in float."""
    mode: str  # static | dynamic | fp16
    fmt: str = "qdq"  # qdq | qoperator (static)
    per_channel: bool = True
    calibrate_method: str = "minmax"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()  # user --exclude, resolved to node names
    keep_float: tuple[str, ...] = ()  # nodes chosen by blame/search (dynamic, fp16, QOperator) or the speed check
    float_tensors: tuple[str, ...] = ()  # static QDQ: tensors whose Q/DQ is removed (edgekit.quantize.tensors)
    equalize: bool = False  # cross-layer equalization of the float model first (edgekit.quantize.equalize)
    smooth_alpha: float | None = None  # SmoothQuant strength, None: off
    bias_correct: bool = False  # empirical bias correction after quantizing (edgekit.quantize.bias_correction)
    notes: tuple[str, ...] = ()

    def with_float(self, *nodes: str) -> "Plan":
        return replace(self, keep_float=tuple(dict.fromkeys((*self.keep_float, *nodes))))

    def with_float_tensors(self, *tensors: str) -> "Plan":
        return replace(self, float_tensors=tuple(dict.fromkeys((*self.float_tensors, *tensors))))

    @property
    def float_nodes(self) -> list[str]:
        return list(dict.fromkeys((*self.exclude, *self.keep_float)))

    def summary(self) -> dict:
        d = {"mode": self.mode}
        if self.mode == "static":
            d.update(format=self.fmt, per_channel=self.per_channel, calibration_method=self.calibrate_method,
                     activation_type=self.activation_type, weight_type=self.weight_type,
                     reduce_range=self.reduce_range)
        elif self.mode == "dynamic":
            d.update(per_channel=self.per_channel, weight_type=self.weight_type, reduce_range=self.reduce_range)
        d.update(excluded_nodes=list(self.exclude), kept_float=list(self.keep_float))
        if self.mode == "static":
            d.update(float_tensors=list(self.float_tensors), equalized=self.equalize,
                     smoothquant_alpha=self.smooth_alpha, bias_corrected=self.bias_correct)
        return d


@dataclass
class FloatModel:
    """The float model prepared for quantization (optimized, shape-inferred), on disk in a work folder."""
    path: Path
    proto: object
    notes: list[str] = field(default_factory=list)

    def nodes(self):
        return list(self.proto.graph.node)

    def node(self, name: str):
        return next((n for n in self.proto.graph.node if n.name == name), None)


def is_quantized(proto) -> list[str]:
    """Reasons the model already is quantized or half precision (empty if it is a float32 model)."""
    onnx = require("onnx", "Quantizing ONNX models")
    reasons = []
    qops = sorted({n.op_type for n in proto.graph.node if n.op_type in QUANTIZED_OPS})
    if qops:
        reasons.append(f"it contains quantization ops {qops}")
    int8 = [t.name for t in proto.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
    if int8:
        reasons.append(f"{len(int8)} weight(s) are already 8-bit (e.g. '{int8[0]}')")
    fp16 = [t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    if fp16 and not any(t.data_type == onnx.TensorProto.FLOAT for t in proto.graph.initializer):
        reasons.append("its weights are float16")
    return reasons


def module_path(node) -> str | None:
    """PyTorch module path recorded at export (edgekit.module), else from the exporter's own metadata."""
    for prop in node.metadata_props:
        if prop.key == "edgekit.module" and prop.value:
            return prop.value
    from edgekit.onnx_io import module_path_of
    return module_path_of(node)


def prepare_float(original, workdir: Path) -> FloatModel:
    """Portable optimization (validated; skipped if it changes results), node names, shape inference."""
    from edgekit.optimize import check_equivalent, optimize_model
    onnx = require("onnx", "Quantizing ONNX models")
    notes = []
    try:
        proto, _, _ = optimize_model(original)
        rows = check_equivalent(original, proto, atol=1e-4, rtol=1e-3, seeds=(0,))
        if not all(r["ok"] for r in rows):
            raise ValueError("outputs changed")
    except Exception as exc:  # quantization still works on the graph as given
        proto = onnx.ModelProto()
        proto.CopyFrom(original)
        notes.append(f"graph cleanup skipped ({type(exc).__name__}: {str(exc)[:120]})")
    seen = set()
    for i, node in enumerate(proto.graph.node):  # ORT's quantizer addresses nodes by (unique) name
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    path = workdir / "float.onnx"
    onnx.save(proto, str(path))
    try:
        from onnxruntime.quantization import quant_pre_process
        pre = workdir / "float_pre.onnx"
        with _quiet():
            quant_pre_process(str(path), str(pre), skip_optimization=True)
        proto = onnx.load(str(pre))
        path = pre
    except Exception as exc:
        notes.append(f"ORT shape pre-processing skipped ({type(exc).__name__})")
    return FloatModel(path, proto, notes)


def resolve_excludes(fm: FloatModel, patterns) -> tuple[str, ...]:
    """--exclude NAME|OP_TYPE|MODULE.PATH → node names; every pattern must match something."""
    names, unknown = [], []
    for pattern in patterns:
        hits = [n.name for n in fm.nodes() if n.name == pattern or n.op_type == pattern
                or (module_path(n) or "\0") == pattern or (module_path(n) or "").startswith(pattern + ".")]
        if not hits:
            unknown.append(pattern)
        names.extend(hits)
    if unknown:
        ops = sorted({n.op_type for n in fm.nodes()})
        modules = sorted({m for m in (module_path(n) for n in fm.nodes()) if m})
        raise UsageError(f"--exclude matched no node: {unknown}.",
                         hint=f"Give a node name, an op type ({', '.join(ops)}) or a module path "
                              f"({', '.join(modules[:12])}{' …' if len(modules) > 12 else ''}).")
    return tuple(dict.fromkeys(names))


def calibrate(fm: FloatModel, make_reader, n_batches: int, method: str, workdir: Path) -> Path:
    """One calibration pass over the data (in chunks, bounded memory); ranges cached as JSON for every build."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    cache = workdir / f"calib-{method}.json"
    if cache.is_file():
        return cache
    extra = {"num_bins": 1024} if method == "entropy" else {}
    with _quiet():
        calibrator = create_calibrator(fm.path, sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
                                       augmented_model_path=str(workdir / f"augmented-{method}.onnx"),
                                       calibrate_method=getattr(CalibrationMethod, CALIB_METHODS[method]),
                                       extra_options=extra)
        for start in range(0, n_batches, CALIB_CHUNK):
            calibrator.collect_data(make_reader(start, min(n_batches, start + CALIB_CHUNK)))
        save_tensors_data(calibrator.compute_data(), cache)
    return cache


def fill_tensors(calib_cache: Path | None) -> tuple[str, ...]:
    """Calibrated activations whose range reaches FILL_MAGNITUDE (mask fills): static QDQ keeps them float32."""
    if calib_cache is None or not Path(calib_cache).is_file():
        return ()
    from onnxruntime.quantization.calibrate import load_tensors_data
    found = []
    for name, data in load_tensors_data(calib_cache).items():
        try:
            lo, hi = data.range_value
        except AttributeError:
            continue
        if max(abs(float(np.min(lo))), abs(float(np.max(hi)))) >= FILL_MAGNITUDE:
            found.append(name)
    return tuple(sorted(found))


def build(fm: FloatModel, plan: Plan, workdir: Path, calib_cache: Path | None = None):
    """→ the candidate ModelProto for `plan`."""
    onnx = require("onnx", "Quantizing ONNX models")
    if plan.mode == "fp16":
        return build_fp16(fm, plan)
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    out = workdir / "candidate.onnx"
    with _quiet():
        if plan.mode == "static":
            quantize_static(str(fm.path), str(out), None, calibration_cache_path=str(calib_cache),
                            quant_format=QuantFormat.QDQ if plan.fmt == "qdq" else QuantFormat.QOperator,
                            per_channel=plan.per_channel, reduce_range=plan.reduce_range,
                            activation_type=getattr(QuantType, TYPE_NAMES[plan.activation_type]),
                            weight_type=getattr(QuantType, TYPE_NAMES[plan.weight_type]),
                            nodes_to_exclude=plan.float_nodes,
                            calibrate_method=getattr(CalibrationMethod, CALIB_METHODS[plan.calibrate_method]))
        else:
            quantize_dynamic(str(fm.path), str(out), per_channel=plan.per_channel, reduce_range=plan.reduce_range,
                             weight_type=getattr(QuantType, TYPE_NAMES[plan.weight_type]),
                             nodes_to_exclude=plan.float_nodes)
    proto = onnx.load(str(out))
    if plan.mode == "static" and plan.fmt == "qdq" and plan.keep_float:
        tensors = {o for name in plan.keep_float if (n := fm.node(name)) is not None for o in n.output}
        strip_qdq(proto, tensors)
    if plan.mode == "static" and plan.fmt == "qdq" and plan.float_tensors:
        from edgekit.quantize.tensors import keep_float
        keep_float(proto, fm.proto, plan.float_tensors)
    return proto


def strip_qdq(proto, tensors: set[str]) -> int:
    """Remove QuantizeLinear→DequantizeLinear pairs on `tensors`, so their consumers read the float values.

    ORT's quantizer puts Q/DQ on a tensor when *any* node touching it is quantized; keeping a layer in float
    needs its output unquantized too, not only its weights.
    """
    graph = proto.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in graph.output}
    drop, removed = [], 0
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in tensors]:
        dqs = [c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"]
        if len(dqs) != len(consumers.get(q.output[0], [])) or q.output[0] in outputs:
            continue
        if any(dq.output[0] in outputs for dq in dqs):
            continue
        for dq in dqs:
            for c in consumers.get(dq.output[0], []):
                for k, name in enumerate(c.input):
                    if name == dq.output[0]:
                        c.input[k] = q.input[0]
            drop.append(id(dq))
        drop.append(id(q))
        removed += 1
    keep = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(keep)
    return removed


def build_fp16(fm: FloatModel, plan: Plan):
    """Weights and activations to float16, float32 inputs/outputs kept; ORT's block list plus nodes whose
    activations would overflow float16 (seen on the data) stay float32."""
    onnx = require("onnx", "Quantizing ONNX models")
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    model = onnx.ModelProto()
    model.CopyFrom(fm.proto)
    blocked = list(plan.float_nodes)
    with _quiet():
        converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST),
                                             node_block_list=blocked or None)
    return converted


def fp16_overflow_nodes(fm: FloatModel, maxabs: dict[str, float]) -> list[str]:
    """Nodes producing or consuming an activation whose magnitude exceeds float16's safe range."""
    hot = {t for t, v in maxabs.items() if v > FP16_SAFE_MAX}
    return [n.name for n in fm.nodes() if hot & (set(n.output) | set(n.input))]


def record_summary(proto, summary: dict) -> None:
    from edgekit.onnx_io import set_metadata
    set_metadata(proto, "edgekit.quantization", json.dumps(summary, default=_plain))


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


class _quiet:
    """ORT's quantizer logs advice at WARNING on the root logger; edgekit reports what it chose itself."""

    def __enter__(self):
        self.level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger().setLevel(self.level)

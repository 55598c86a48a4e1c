"""Which tensor (or layer) lost the accuracy: SQNR of the quantized model's tensors against their float twins,
and the measured effect of keeping each of the worst in float.

Static QDQ models are blamed per quantized tensor (`tensor_sensitivity`: each activation's Q/DQ pair and each
weight's DequantizeLinear), since that is where the error is added and what can be kept in float exactly
(`edgekit.quantize.tensors`); dynamic, FP16 and QOperator models per layer (`layer_sensitivity`).

For static QDQ a layer's *local* SQNR is that of its float output against the same values passed through
the output's Quantize/Dequantize pair (the error that layer adds), averaged over channels; for dynamic and FP16 models it is derived from how much noise the layer adds
on top of its inputs' noise. The cumulative SQNR compares the tensor with the float model's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.deps import require


@dataclass
class LayerBlame:
    node: str
    op_type: str
    module: str | None
    local_sqnr_db: float
    sqnr_db: float  # cumulative, against the float model (mean over channels)
    drop_if_float: float | None = None  # the accuracy metric's drop with only this layer/tensor kept in float
    tensor: str | None = None  # tensor rows: the quantized tensor (node is its producer, or consumer for weights)
    kind: str = "layer"  # layer | activation | weight

    @property
    def key(self) -> str:
        """What keeping it in float names: the tensor for tensor rows, else the node."""
        return self.tensor or self.node

    @property
    def label(self) -> str:
        if self.kind == "weight":
            return f"{self.module or self.node} weight"
        return self.module or self.tensor or self.node

    def as_dict(self) -> dict:
        return {"kind": self.kind, "tensor": self.tensor, "node": self.node, "op_type": self.op_type,
                "module": self.module,
                "local_sqnr_db": _finite(self.local_sqnr_db), "sqnr_db": _finite(self.sqnr_db),
                "drop_if_float": self.drop_if_float}


def _finite(v: float):
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64).ravel()
    noise = float(np.sum((ref - got.astype(np.float64).ravel()) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return float("inf")
    return 10 * math.log10(signal / noise) if signal > 0 else float("-inf")


def channel_sqnr_db(ref: np.ndarray, got: np.ndarray, cap: float = 100.0) -> float:
    """Mean over channels (axis 1) of each channel's SQNR: one huge-range channel cannot hide that the
    quantization step wiped out all the others, as it would in a whole-tensor SQNR."""
    if ref.ndim < 2 or ref.shape[1] == 1:
        return min(sqnr_db(ref, got), cap)
    r = np.moveaxis(ref.astype(np.float64), 1, 0).reshape(ref.shape[1], -1)
    g = np.moveaxis(got.astype(np.float64), 1, 0).reshape(ref.shape[1], -1)
    signal = np.sum(r ** 2, axis=1)
    noise = np.sum((r - g) ** 2, axis=1)
    live = signal > 0
    if not live.any():
        return cap
    with np.errstate(divide="ignore"):
        per = np.where(noise[live] > 0, 10 * np.log10(signal[live] / np.maximum(noise[live], 1e-300)), cap)
    return float(np.mean(np.minimum(per, cap)))


def _float_tensors(proto) -> dict[str, object]:
    """name → ValueInfo of every float32 tensor with a known type (after shape inference)."""
    onnx = require("onnx", "Blaming layers")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:
        inferred = proto
    return {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def _run_exposing(proto, names: list[str], batches: list[dict], threads: int | None) -> dict[str, np.ndarray]:
    """Run `proto` with `names` added as graph outputs; values concatenated over the batches."""
    onnx = require("onnx", "Blaming layers")
    from edgekit.runtimes import load
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    infos = _float_tensors(model)
    present = {o.name for o in model.graph.output}
    keep = []
    for n in names:
        if n in present:
            keep.append(n)
        elif n in infos:
            model.graph.output.append(infos[n])
            keep.append(n)
    sess = load(model.SerializeToString(), runtime="onnxruntime", provider="cpu", threads=threads,
                optimization="basic")
    got: dict[str, list] = {n: [] for n in keep}
    for feeds in batches:
        values = sess.native.run(keep, feeds)
        for n, v in zip(keep, values):
            got[n].append(v)
    return {n: np.concatenate([np.atleast_1d(x) for x in v]) for n, v in got.items()}


def layer_sensitivity(float_proto, quant_proto, batches: list[dict], *, threads: int | None = None) -> list[LayerBlame]:
    """Every float layer's SQNR in the quantized model, worst (lowest local SQNR) first."""
    from edgekit.quantize.build import module_path
    nodes = [n for n in float_proto.graph.node if n.output]
    float_types = _float_tensors(float_proto)
    tensors = [o for n in nodes for o in n.output if o in float_types]
    qnodes = list(quant_proto.graph.node)
    consumers: dict[str, list] = {}
    for n in qnodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    # tensor → the DequantizeLinear output that quantized consumers read instead of it, and its Q parameters
    dq_of: dict[str, str] = {}
    qparams: dict[str, tuple] = {}
    inits = {t.name: t for t in quant_proto.graph.initializer}
    for n in qnodes:
        if n.op_type != "QuantizeLinear":
            continue
        dq = next((c for c in consumers.get(n.output[0], []) if c.op_type == "DequantizeLinear"), None)
        # a quantized graph output keeps its name on the DequantizeLinear; the value before Q is renamed
        name = n.input[0] if n.input[0] in float_types else (dq.output[0] if dq is not None else None)
        if name not in float_types:
            continue
        if dq is not None and dq.output[0] != name:
            dq_of[name] = dq.output[0]
        params = _qparams(n, inits)
        if params is not None:
            qparams[name] = params
    qnames = {o for n in qnodes for o in n.output} | {i.name for i in quant_proto.graph.input}
    ref = _run_exposing(float_proto, tensors, batches, threads)
    wanted = [t for t in tensors if t in qnames] + list(dq_of.values())
    got = _run_exposing(quant_proto, wanted, batches, threads)

    def seen(t: str):  # what the rest of the quantized model reads for float tensor t
        return got.get(dq_of.get(t, t)) if dq_of.get(t, t) in got else None

    cumulative: dict[str, float] = {}
    for t in tensors:
        value = seen(t)
        if t in ref and value is not None and value.size == ref[t].size:
            cumulative[t] = channel_sqnr_db(ref[t], value)
    rows = []
    for node in nodes:
        outs = [o for o in node.output if o in cumulative]
        if not outs:
            continue
        out = outs[0]
        if out in qparams and out in ref:
            # the error this tensor's own Quantize/Dequantize adds to the float model's values
            local = channel_sqnr_db(ref[out], _fake_quant(ref[out], *qparams[out]))
        else:
            ins = [cumulative[i] for i in node.input if i in cumulative]
            local = _added_noise_db(cumulative[out], min(ins) if ins else float("inf"))
        rows.append(LayerBlame(node.name, node.op_type, module_path(node), local, cumulative[out]))
    rows.sort(key=lambda r: (r.local_sqnr_db, r.sqnr_db))
    return rows


def _added_noise_db(out_db: float, in_db: float) -> float:
    """SQNR of the noise a layer adds: noise-to-signal ratios add (to first order) through a layer."""
    nsr_out = 10 ** (-out_db / 10) if math.isfinite(out_db) else 0.0
    nsr_in = 10 ** (-in_db / 10) if math.isfinite(in_db) else 0.0
    added = nsr_out - nsr_in
    return float("inf") if added <= 0 else -10 * math.log10(added)


def _qparams(qnode, inits) -> tuple | None:
    """(scale, zero point, qmin, qmax) of a per-tensor QuantizeLinear, from its initializers."""
    from onnx import numpy_helper
    if len(qnode.input) < 2 or qnode.input[1] not in inits:
        return None
    scale = numpy_helper.to_array(inits[qnode.input[1]]).astype(np.float64)
    zp_t = inits.get(qnode.input[2]) if len(qnode.input) > 2 else None
    zp = numpy_helper.to_array(zp_t) if zp_t is not None else np.array(0, np.uint8)
    if scale.size != 1:
        return None
    info = np.iinfo(zp.dtype) if np.issubdtype(zp.dtype, np.integer) else None
    if info is None:
        return None
    return float(scale.ravel()[0]), int(zp.ravel()[0]), info.min, info.max


def _fake_quant(x: np.ndarray, scale: float, zp: int, qmin: int, qmax: int) -> np.ndarray:
    if scale == 0:
        return np.zeros_like(x)
    q = np.clip(np.rint(x.astype(np.float64) / scale) + zp, qmin, qmax)
    return (q - zp) * scale


def tensor_sensitivity(float_proto, quant_proto, batches: list[dict], *,
                       threads: int | None = None) -> list[LayerBlame]:
    """Every quantized tensor of a static QDQ model, worst (lowest local SQNR) first.

    Local SQNR: the float value against the same value through the tensor's own Quantize/Dequantize (weights:
    against the dequantized weight, the worse of the per-output and per-input channel means, so one input
    channel rounded to zero shows). Cumulative SQNR: what the quantized model's consumers read, against float.
    """
    from edgekit.quantize.build import module_path
    from edgekit.quantize.tensors import fake_quant_weight, quantized_tensors, weight_dequantizers
    points = quantized_tensors(float_proto, quant_proto)
    producers = {o: n for n in float_proto.graph.node for o in n.output}
    float_consumers: dict[str, list] = {}
    for n in float_proto.graph.node:
        for i in n.input:
            float_consumers.setdefault(i, []).append(n)
    qnodes = list(quant_proto.graph.node)
    consumers: dict[str, list] = {}
    for n in qnodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name: t for t in quant_proto.graph.initializer}
    qparams, dq_of = {}, {}
    for q in qnodes:
        if q.op_type != "QuantizeLinear":
            continue
        dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None)
        name = q.input[0] if q.input[0] in points else (dq.output[0] if dq is not None else None)
        if name in points and name not in qparams:
            params = _qparams(q, inits)
            if params is not None:
                qparams[name] = params
            if dq is not None:
                dq_of[name] = dq.output[0]
    acts = [t for t, kind in points.items() if kind == "activation"]
    ref = _run_exposing(float_proto, acts, batches, threads)
    got = _run_exposing(quant_proto, [dq_of[t] for t in acts if t in dq_of], batches, threads)
    rows = []
    for t in acts:
        if t not in ref or t not in qparams:
            continue
        local = channel_sqnr_db(ref[t], _fake_quant(ref[t], *qparams[t]))
        seen = got.get(dq_of.get(t))
        cumulative = channel_sqnr_db(ref[t], seen) if seen is not None and seen.size == ref[t].size else local
        node = producers.get(t)
        rows.append(LayerBlame(node.name if node is not None else t, node.op_type if node is not None else "input",
                               module_path(node) if node is not None else None, local, cumulative, tensor=t,
                               kind="activation"))
    from onnx import numpy_helper
    float_inits = {i.name: i for i in float_proto.graph.initializer}
    for t, dq in weight_dequantizers(float_proto, quant_proto).items():
        w = numpy_helper.to_array(float_inits[t])
        wq = fake_quant_weight(dq, inits)
        if wq is None or wq.shape != w.shape:
            continue
        local = channel_sqnr_db(w, wq) if w.ndim < 2 else min(
            channel_sqnr_db(np.moveaxis(w, a, 1), np.moveaxis(wq, a, 1)) for a in (0, 1))
        user = (float_consumers.get(t) or [None])[0]
        rows.append(LayerBlame(user.name if user is not None else t, user.op_type if user is not None else "weight",
                               module_path(user) if user is not None else None, local, local, tensor=t,
                               kind="weight"))
    rows.sort(key=lambda r: (r.local_sqnr_db, r.sqnr_db))
    return rows

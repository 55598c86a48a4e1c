"""Empirical bias correction (Nagel et al. 2019, §4.2): quantized weights shift each output channel's mean; measure
the shift on calibration data and take it out of the bias.

For each quantized Conv/Gemm with a bias, in graph order (so each layer is corrected for the error its already
corrected inputs still carry): mean over the calibration batches of (quantized output - float output) per output
channel, subtracted from the bias. ORT stores a QDQ bias as int32 with scale = input scale x weight scale; the
correction is rounded to that grid. The caller keeps the result only if it improves the metric.
"""
from __future__ import annotations

import numpy as np

MAX_LAYERS = 200  # one quantized-model run per corrected layer


def correct_biases(float_proto, quant_proto, batches: list[dict], *, threads: int | None = None):
    """→ (a corrected copy of `quant_proto`, names of the nodes whose bias changed)."""
    import onnx
    from onnx import numpy_helper

    from edgekit.quantize.blame import _run_exposing
    model = onnx.ModelProto()
    model.CopyFrom(quant_proto)
    float_nodes = {n.name: n for n in float_proto.graph.node if n.name}
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    targets = []
    for node in model.graph.node:
        twin = float_nodes.get(node.name)
        if node.op_type not in ("Conv", "Gemm") or twin is None or len(node.input) < 3 or not node.input[2]:
            continue
        if node.input[1] == twin.input[1]:  # weight kept in float: nothing to correct
            continue
        dq = producers.get(node.input[2])
        bias = dq.input[0] if dq is not None and dq.op_type == "DequantizeLinear" else node.input[2]
        if bias in inits:
            targets.append((node, twin, dq if bias != node.input[2] else None, bias))
    targets = targets[:MAX_LAYERS]
    if not targets:
        return model, []
    ref = _run_exposing(float_proto, [t[1].output[0] for t in targets], batches, threads)
    changed = []
    for node, twin, dq, bias in targets:
        got = _run_exposing(model, [node.output[0]], batches, threads).get(node.output[0])
        want = ref.get(twin.output[0])
        if got is None or want is None or got.shape != want.shape:
            continue
        axis = 1 if node.op_type == "Conv" else -1
        delta = np.moveaxis(got - want, axis, 0).reshape(got.shape[axis], -1).mean(1).astype(np.float64)
        b = numpy_helper.to_array(inits[bias])
        if dq is not None:
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64).reshape(-1)
            step = np.rint(delta / np.where(scale > 0, scale, np.inf)).astype(np.int64)
            if not step.any():
                continue
            info = np.iinfo(b.dtype)
            new = np.clip(b.astype(np.int64) - step.reshape(b.shape), info.min, info.max).astype(b.dtype)
        else:
            new = (b - delta.reshape(b.shape)).astype(b.dtype)
        inits[bias].CopyFrom(numpy_helper.from_array(new, bias))
        changed.append(node.name)
    return model, changed

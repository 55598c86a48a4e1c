"""QDQ test models: ONNX Runtime's static quantizer on small float graphs, or Q/DQ written around every
activation for ops ONNX Runtime does not quantize; and the INT8 comparison in quantization steps (the differential
helper's run, judged by convert's gate, measured in the QDQ model's output steps)."""
from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

from _differential import as_model, differential, seeded_inputs


def calibration(model: onnx.ModelProto, n: int = 16, seed: int = 0) -> list:
    return [seeded_inputs(model, seed + i) for i in range(n)]


def ort_qdq(float_model: onnx.ModelProto, tmp_path, seed: int = 0, per_channel: bool = True,
            activation: str = "uint8", weight: str = "int8", extra=None) -> onnx.ModelProto:
    """onnxruntime.quantization.quantize_static (QDQ) with seeded random calibration, as `edgekit quantize` runs it."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = calibration(float_model, seed=seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    src, dst = tmp_path / f"float_{id(float_model)}.onnx", tmp_path / f"qdq_{id(float_model)}.onnx"
    onnx.save(float_model, str(src))
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=types[activation], weight_type=types[weight], extra_options=extra or {})
    finally:
        logging.getLogger().setLevel(level)
    return onnx.load(str(dst))


def wrap_qdq(float_model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Q→DQ (uint8, per tensor, min/max of seeded random calibration) on every activation of the graph."""
    import onnxruntime as ort
    model = onnx.ModelProto()
    model.CopyFrom(float_model)
    g = model.graph
    inits = {i.name for i in g.initializer}
    acts = [i.name for i in g.input if i.name not in inits] + [o for n in g.node for o in n.output if o]
    probe = onnx.ModelProto()
    probe.CopyFrom(float_model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(a) for a in acts if a not in known)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    lo, hi = {}, {}
    for feeds in calibration(float_model, seed=seed):
        values = dict(zip(names, sess.run(None, feeds)), **feeds)
        for a in acts:
            lo[a] = min(lo.get(a, 0.0), float(values[a].min()))
            hi[a] = max(hi.get(a, 0.0), float(values[a].max()))
    outputs = {o.name for o in g.output}
    scale_zp = {}
    for a in acts:
        scale = (hi[a] - lo[a]) / 255.0 or 1.0
        zp = int(np.clip(round(-lo[a] / scale), 0, 255))
        g.initializer.extend([numpy_helper.from_array(np.asarray(scale, np.float32), f"{a}_s"),
                              numpy_helper.from_array(np.asarray(zp, np.uint8), f"{a}_z")])
        scale_zp[a] = [f"{a}_s", f"{a}_z"]

    def qdq_pair(a):
        src = f"{a}_float" if a in outputs else a
        return [helper.make_node("QuantizeLinear", [src, *scale_zp[a]], [f"{a}_q"]),
                helper.make_node("DequantizeLinear", [f"{a}_q", *scale_zp[a]], [a if a in outputs else f"{a}_dq"])]

    ordered = [nd for a in acts if a in {i.name for i in g.input} for nd in qdq_pair(a)]
    for n in list(g.node):
        n.input[:] = [f"{i}_dq" if i in scale_zp else i for i in n.input]
        n.output[:] = [f"{o}_float" if o in outputs else o for o in n.output]
        ordered.append(n)
        for o in n.output:
            base = o[:-len("_float")] if o.endswith("_float") and o[:-len("_float")] in outputs else o
            if base in scale_zp:
                ordered.extend(qdq_pair(base))
    del g.node[:]
    g.node.extend(ordered)
    del g.value_info[:]
    return as_model(model)


def output_scales(qdq: onnx.ModelProto) -> dict:
    """Graph output name → the scale of the DequantizeLinear that makes it (1.0 where there is none)."""
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    made = {o: n for n in qdq.graph.node for o in n.output}
    scales = {}
    for out in qdq.graph.output:
        node = made.get(out.name)
        scales[out.name] = float(inits[node.input[1]]) if node is not None and node.op_type == "DequantizeLinear" else 1.0
    return scales


def steps_off(qdq: onnx.ModelProto, compiled, seed: int = 100) -> dict:
    """Output name → max |ORT QDQ − LiteRT INT8| in quantization steps of that output (its DequantizeLinear scale in
    the QDQ model), on a seeded input; asserts first that every output passes convert's int8 gate (differential)."""
    result = differential(qdq, compiled=compiled, seed=seed)
    assert not result.failures(), "; ".join(result.failures())
    scales = output_scales(qdq)
    return {d.name: d.max_abs / scales[d.name] for d in result.diffs}

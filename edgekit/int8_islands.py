"""Float islands of an INT8 conversion chosen by measurement: where TFLite's int8 kernels drift from ONNX Runtime's
QDQ model (Softmax's fixed 1/256 output scale, LayerNorm's decomposition, GELU, residual adds of very different
scales, sigmoid gates), the ops that add the error are found by comparing every quantized tensor of the compiled
model with the same tensor of the QDQ model, and are then compiled in float between DEQUANTIZE/QUANTIZE.

Each quantized tensor (a QuantizeLinear output of the QDQ model keeps its name in the TFLite model) is compared in
its own quantization steps. An op's *local* error is how many steps its output is off beyond the worst of its
quantized inputs (error carried in is not the op's fault); the ops whose local error exceeds LOCAL_STEPS are the
candidates, worst first. Fixed-output-step kernels whose step is far coarser than the quantizer's
(fixed_step_losses) are chosen first, from the QDQ model alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: an op whose int8 output is off by more steps than its inputs by this much adds error of its own
LOCAL_STEPS = 2.0
#: islands added per round (worst first), and rounds at most
PER_ROUND = 4
ROUNDS = 6


@dataclass
class OpError:
    node: str  # the ONNX node (of the QDQ model) that writes the tensor
    op_type: str
    tensor: str
    steps: float  # max |TFLite - ONNX Runtime| of the tensor, in its quantization steps
    local_steps: float  # steps beyond the worst quantized input of the node
    feeders: tuple = ()  # the nodes writing its quantized inputs

    def as_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "tensor": self.tensor, "steps": round(self.steps, 2),
                "local_steps": round(self.local_steps, 2)}


def measure(onnx_bytes: bytes, compiled, seeds=(0,)) -> list[OpError]:
    """Every quantized tensor the QDQ model and the compiled model (compiler.Compiled) share, with its error;
    worst local error first."""
    import onnx
    from onnx import numpy_helper

    from edgekit import runtimes
    from edgekit.tensors import quantize_int8 as _quantized, to_layout
    from edgekit.converters.tflite.writer import tensor_names
    from edgekit.inputs import validation_feeds

    input_shapes, io_quant = compiled.input_shapes, compiled.quantization.get("io") or {}
    in_file = tensor_names(compiled.graph)

    model = onnx.load_from_string(onnx_bytes)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    quantized = {}  # Q output name -> (scale, zero point, the float tensor it quantizes)
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and np.size(inits[n.input[1]]) == 1:
            zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros((), np.uint8)
            if zp is not None:
                quantized[n.output[0]] = (float(inits[n.input[1]]), zp, n.input[0])
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(q) for q in quantized if q not in have)
    worst: dict[str, float] = {}
    with runtimes.load(exposed.SerializeToString(), runtime="onnxruntime", threads=1) as ref:
        from ai_edge_litert.interpreter import Interpreter
        lite = Interpreter(model_content=compiled.to_bytes(), num_threads=1, experimental_preserve_all_tensors=True)
        details = {d["name"]: d for d in lite.get_tensor_details()}
        inputs = lite.get_input_details()
        for d in inputs:
            shape = input_shapes.get(d["name"])
            if shape is not None and list(d["shape"]) != [2 if s == -1 else s for s in shape]:
                lite.resize_tensor_input(d["index"], [2 if s == -1 else s for s in shape])
        lite.allocate_tensors()
        layouts = dict(compiled.io_layouts or {})
        for seed in seeds:
            feeds = validation_feeds(ref.inputs, input_shapes, seed)
            expected = ref.run(feeds)
            for d in inputs:
                lite.set_tensor(d["index"], to_layout(_quantized(feeds[d["name"]], io_quant.get(d["name"])),
                                                      layouts.get(d["name"])).astype(d["dtype"]))
            lite.invoke()
            for name, (scale, zp, _) in quantized.items():
                d = details.get(in_file.get(name, name))
                if d is None or name not in expected or not d["quantization_parameters"]["scales"].size:
                    continue
                ref_q = np.asarray(expected[name])
                candidates = _onnx_layouts(lite.get_tensor(d["index"]), ref_q.shape)
                if not candidates:
                    continue
                q = d["quantization_parameters"]
                want = (ref_q.astype(np.float64) - zp.astype(np.float64)) * scale
                # equal dims leave several layouts possible (a [1, C, 16, 16] map): the one that matches is the one
                steps = min(float(np.abs((got.astype(np.float64) - q["zero_points"][0]) * q["scales"][0] - want)
                                  .max(initial=0.0)) / scale for got in candidates)
                worst[name] = max(worst.get(name, 0.0), steps)
    rows = []
    for name, steps in worst.items():
        node = producers.get(quantized[name][2])
        if node is None:
            continue
        sources = [dq.input[0] for i in node.input if (dq := producers.get(i)) is not None
                   and dq.op_type == "DequantizeLinear" and dq.input[0] in quantized]
        if any(q not in worst for q in sources):
            continue  # an input the compiled model does not hold (fused away): the error cannot be attributed
        carried = [worst[q] for q in sources]
        feeders = tuple(dict.fromkeys(p.name for q in sources if (p := producers.get(quantized[q][2])) is not None))
        rows.append(OpError(node.name, node.op_type, name, steps, steps - max(carried, default=0.0), feeders))
    rows.sort(key=lambda r: -r.local_steps)
    return rows


#: ONNX ops whose LiteRT int8 kernels write a fixed output step (quantization.FIXED_OUTPUT), by that step
FIXED_STEP = {"Tanh": 1.0 / 128, "Sigmoid": 1.0 / 256, "Softmax": 1.0 / 256}


def fixed_step_losses(onnx_bytes: bytes) -> list[OpError]:
    """Ops that cannot meet their quantizer's output step in int8, known without measuring: LiteRT's TANH, LOGISTIC
    and SOFTMAX write steps of 1/128 or 1/256 whatever the output's calibrated step, and the compiler requantizes
    after them, so their rounding (up to half the fixed step) is more than LOCAL_STEPS of the calibrated step once
    the fixed step exceeds 2·LOCAL_STEPS of it. Seen on a deep tanh chain: every Tanh past the 9th had outputs
    below 1/256 and wrote zeros, which the measured rounds (PER_ROUND × ROUNDS ops) could not all reach.
    `steps`/`local_steps` carry the worst rounding in calibrated steps (fixed step / 2 / calibrated step)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    readers: dict = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    found = []
    for n in model.graph.node:
        fixed = FIXED_STEP.get(n.op_type)
        quantizers = [q for q in readers.get(n.output[0], []) if q.op_type == "QuantizeLinear"] if fixed else []
        scales = [float(inits[q.input[1]]) for q in quantizers if q.input[1] in inits
                  and np.size(inits[q.input[1]]) == 1]
        if scales and fixed / 2 / min(scales) > LOCAL_STEPS:
            off = fixed / 2 / min(scales)
            found.append(OpError(n.name, n.op_type, quantizers[0].output[0], off, off))
    return found


def culprits(rows: list[OpError], floats=()) -> list[OpError]:
    """The ops to compile in float next: local error above LOCAL_STEPS, worst first, PER_ROUND at most.

    An op already computed in float (`floats`: islands) adds no kernel error of its own; it amplifies the rounding
    of its int8 inputs (LayerNorm divides a residual stream's one-step difference by its small deviation, a
    fixed-scale Softmax output is requantized finer): the nearest int8 ops feeding it (through float ones) are
    chosen instead."""
    by_node = {r.node: r for r in rows}
    chosen: dict[str, OpError] = {}
    for r in rows:
        if r.local_steps <= LOCAL_STEPS:
            break
        for pick in _int8_sources(r, by_node, set(floats)):
            if pick.node not in floats and pick.steps > 0:
                chosen.setdefault(pick.node, OpError(pick.node, pick.op_type, pick.tensor, pick.steps,
                                                     r.local_steps, pick.feeders))
        if len(chosen) >= PER_ROUND:
            break
    return list(chosen.values())[:PER_ROUND]


def _onnx_layouts(got: np.ndarray, shape) -> list:
    """`got` in the ONNX tensor's shape: as is, or each transpose (a layout the compiler chose) that gives it."""
    import itertools
    shape = tuple(shape)
    if got.shape == shape:
        return [got]
    perms = [p for p in itertools.permutations(range(got.ndim)) if tuple(got.shape[k] for k in p) == shape] \
        if got.ndim <= 5 else []
    return [got.transpose(p) for p in perms]


def _int8_sources(row: OpError, by_node: dict, floats: set) -> list[OpError]:
    """`row` if its op is int8, else the nearest int8 ops upstream of it through ops computed in float."""
    found, todo, seen = [], [row], set()
    while todo:
        r = todo.pop()
        if r.node in seen:
            continue
        seen.add(r.node)
        if r.node not in floats:
            found.append(r)
        else:
            todo.extend(by_node[f] for f in r.feeders if f in by_node)
    return found

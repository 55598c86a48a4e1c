"""Static QDQ: tensors kept in float because a normalisation downstream amplifies their rounding, found by measuring.

A normalisation divides by its input's spread. When one row's spread is only a few quantization steps wide (a
Vision Transformer's class-token row is learned near zero, its residual stream's step is set by the patch rows), one
step of rounding at its input moves its output by many of the output's own steps: on a small random-weight ViT one
input step became 17 output steps. ONNX Runtime and LiteRT round a few values differently (±1 step); after such a
normalisation no choice of float islands in the compiled model brings LiteRT back within 4 output steps of the QDQ
model, because the flip happens at the QDQ model's own Q/DQ pair. The only fix is not to quantize that tensor.

A gain of more than one step is amplification, and it compounds: a chain of normalisations that each turn one
step into 1.5 (an ordinary LayerNorm over rows narrower than the tensor's range) makes the rounding ORT and LiteRT
disagree on grow block by block. Measured on SegFormer and wav2vec2 (random weights): the QDQ model itself moved
4–7 output steps when its input moved by 1e-5 (the float model: 0.004 steps), and LiteRT ended 8–11 steps from it
with every op that adds error of its own already computed in float; with no normalisation allowed a gain above one
step both agree within the INT8 gate (5–6 steps of output, SegFormer 34 tensors kept float, wav2vec2 32: its
convolutional feature extractor feeds the first LayerNorm with no contraction in between). A limit of 2 steps let
gains of 1.1–2 compound; 1.25 and 1.5 left wav2vec2 outside the gate.

Normalisations are also found where exporters decompose them (`normalizations`): a Div by, or a Mul with the
reciprocal of, a reduction of its own operand. Swin-V2's cosine attention divides q and k by their L2 norms
(F.normalize): on the random-weight Swin-V2-T one step of q moved the normalised q by 180–210 of its steps in the
last two stages, where some rows' norms are a few steps wide (kept float; that model's QDQ model still moves ~19
output steps under a 1e-5 input change, so it stays outside the INT8 gate for other reasons). Opsets before 17
export LayerNorm itself this way.

So for every normalisation whose output is quantized, the calibration data is run through the float model with its
input perturbed by one input step (seeded: a random FLIP_RATE share of its values, ±1 step each) and the output's move is read in output steps
(`gain`). An input whose gain exceeds AMPLIFY_STEPS is kept in float; its producer then computes into a float
tensor, so the quantized tensors that producer reads are the next to measure (against the same normalisation's
output): the walk climbs until every quantized tensor feeding it moves the output by at most AMPLIFY_STEPS.
Steps are those of ORT's activation quantizer: range (widened to include 0) / 255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.deps import require

#: a ±1-step flip at a quantized input may move a normalisation's quantized output by at most this many of its steps:
#: one, i.e. no amplification (see the module docstring for why not more)
AMPLIFY_STEPS = 1.0
#: ops that divide by their input's spread (their first input is the data)
NORMALIZATIONS = ("LayerNormalization", "InstanceNormalization", "GroupNormalization", "SimplifiedLayerNormalization",
                  "SkipLayerNormalization", "SkipSimplifiedLayerNormalization")
#: reductions a decomposed normalisation computes its statistic with, and how many ops back it is looked for
REDUCTIONS = ("ReduceL2", "ReduceL1", "ReduceMean", "ReduceSumSquare", "ReduceSum", "ReduceMax")
STATISTIC_DEPTH = 6
#: calibration batches the measurement runs (each candidate tensor costs one pass of the float model over them)
BATCHES = 4
#: tensors measured at most (candidates beyond are left quantized; the walk stops, the validation still judges);
#: the walk is breadth first, so every normalisation's own input is measured before any walk climbs further
MAX_MEASURED = 64
#: share of a tensor's values moved by one step (random sign): ORT and LiteRT disagree on a few roundings, not on
#: all; moving every value at once overstates a normalisation's gain (each output also moves with the mean and spread
#: of all its inputs' moves) and, through a float MatMul, sums a whole row of moves
FLIP_RATE = 1 / 32
_DELTA = "edgekit_amplify_delta"


@dataclass
class Amplified:
    """A tensor kept in float: the normalisation whose output its one-step rounding moves by `gain` output steps."""
    tensor: str
    norm: str  # the normalisation node's name
    gain: float

    def as_dict(self) -> dict:
        return {"tensor": self.tensor, "normalization": self.norm, "output_steps_per_input_step": round(self.gain, 2)}


def calibrated_steps(calib_cache) -> dict[str, float]:
    """Tensor → the 8-bit step ORT's quantizer gives its calibrated range (range widened to 0, / 255)."""
    from onnxruntime.quantization.calibrate import load_tensors_data
    steps = {}
    for name, data in load_tensors_data(calib_cache).items():
        try:
            lo, hi = data.range_value
        except AttributeError:
            continue
        lo, hi = min(float(np.min(lo)), 0.0), max(float(np.max(hi)), 0.0)
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            steps[name] = (hi - lo) / 255.0
    return steps


def amplified_inputs(float_proto, calib_cache, batches: list[dict], *, skip=(), threads: int | None = None,
                     threshold: float = AMPLIFY_STEPS, seed: int = 0) -> list[Amplified]:
    """The quantized tensors to keep in float so that no normalisation turns one input step into more than
    `threshold` output steps, measured on `batches` (calibration feeds); `skip`: tensors already kept float."""
    steps = calibrated_steps(calib_cache)
    graph = float_proto.graph
    inits = {t.name for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    norms = [n for n in normalizations(graph) if n.output in steps]
    if not norms or not batches:
        return []
    batches = batches[:BATCHES]
    floats = set(skip)
    kept: list[Amplified] = []
    measured: dict[tuple[str, str], float] = {}
    base = _outputs(float_proto, None, [n.output for n in norms], batches, threads, seed)
    todo = [(norm, norm.data) for norm in norms]  # breadth first: every normalisation's own input is measured
    while todo and len(measured) < MAX_MEASURED:  # before any walk climbs further
        norm, t = todo.pop(0)
        if t in inits or (t, norm.name) in measured:
            continue
        if t in floats or t not in steps:  # already float: its producer's quantized inputs carry the rounding
            if t in producers and t not in steps:
                todo += [(norm, i) for i in producers[t].input if i]
            continue
        moved = _outputs(float_proto, (t, steps[t]), [norm.output], batches, threads, seed)[norm.output]
        gain = float(np.abs(moved - base[norm.output]).max(initial=0.0)) / steps[norm.output]
        measured[(t, norm.name)] = gain
        if gain > threshold:
            kept.append(Amplified(t, norm.name, gain))
            floats.add(t)
            if t in producers:
                todo += [(norm, i) for i in producers[t].input if i]
    return kept


@dataclass(frozen=True)
class Normalization:
    """A node that divides `data` by a statistic of it (its spread, its norm), writing `output`."""
    name: str
    data: str
    output: str


def normalizations(graph) -> list[Normalization]:
    """The normalisation ops (NORMALIZATIONS), and the Div or Mul nodes that exporters decompose one into: an operand
    divided by (or multiplied with the reciprocal of) a value computed, within STATISTIC_DEPTH ops, by a reduction
    (REDUCTIONS) from that operand or what it is computed from — F.normalize's x / max(‖x‖, eps) (Swin-V2's cosine attention),
    (x − mean) / sqrt(var + eps) of opsets without LayerNormalization, RMSNorm's x · rsqrt(mean(x²) + eps)."""
    producers = {o: n for n in graph.node for o in n.output}
    found = []
    for n in graph.node:
        if n.op_type in NORMALIZATIONS and n.input and n.input[0]:
            found.append(Normalization(n.name, n.input[0], n.output[0]))
        elif n.op_type in ("Div", "Mul") and len(n.input) == 2:
            pairs = [(n.input[0], n.input[1])] if n.op_type == "Div" else [
                (d, m) for d, m in (n.input, n.input[::-1]) if _inverts(m, producers)]
            for data, divisor in pairs:
                if _is_statistic_of(divisor, data, producers):
                    found.append(Normalization(n.name, data, n.output[0]))
                    break
    return found


def _inverts(tensor: str, producers: dict) -> bool:
    """Whether a Mul by `tensor` divides: it is made (through ops that only reshape) by Reciprocal, a Pow (rsqrt's
    x^-0.5) or a Div. A gate (x · sigmoid(mean(x)), squeeze-and-excitation) multiplies by a statistic without
    dividing by the spread: one step of x moves its output by at most about one step, so it is no normalisation."""
    node = producers.get(tensor)
    while node is not None and node.op_type in ("Expand", "Cast", "Reshape", "Unsqueeze", "Squeeze") and node.input:
        node = producers.get(node.input[0])
    return node is not None and node.op_type in ("Reciprocal", "Pow", "Div")


def _is_statistic_of(value: str, data: str, producers: dict) -> bool:
    """Whether `value` is computed, within STATISTIC_DEPTH ops, by a reduction of `data`: its input is `data`, is
    computed from it (x², x − mean) or is what `data` is computed from (x of x − mean), within STATISTIC_DEPTH."""
    sources = _ancestors(data, producers) | {data}
    for name in _ancestors(value, producers) | {value}:
        node = producers.get(name)
        if node is not None and node.op_type in REDUCTIONS and node.input and (
                node.input[0] in sources or data in _ancestors(node.input[0], producers) | {node.input[0]}):
            return True
    return False


def _ancestors(tensor: str, producers: dict) -> set[str]:
    seen, frontier = set(), {tensor}
    for _ in range(STATISTIC_DEPTH):
        frontier = {i for t in frontier if t in producers for i in producers[t].input if i} - seen
        seen |= frontier
    return seen


def _outputs(float_proto, perturb, names: list[str], batches: list[dict], threads, seed) -> dict[str, np.ndarray]:
    """`names` over the batches, with FLIP_RATE of tensor `perturb[0]`'s values moved by ±`perturb[1]` (seeded) where given."""
    onnx = require("onnx", "Quantizing ONNX models")
    from edgekit.runtimes import load
    model = onnx.ModelProto()
    model.CopyFrom(float_proto)
    g = model.graph
    if perturb is not None:
        tensor, _ = perturb
        moved = tensor + "/edgekit_unperturbed"
        for node in g.node:  # readers of the tensor read tensor + delta
            for k, name in enumerate(node.input):
                if name == tensor:
                    node.input[k] = moved
        g.node.append(onnx.helper.make_node("Add", [tensor, _DELTA], [moved], name="edgekit_amplify_add"))
        g.input.append(onnx.helper.make_tensor_value_info(_DELTA, onnx.TensorProto.FLOAT, None))
        for o in g.output:
            if o.name == tensor:
                o.name = moved
        _sort(model)
    del g.output[:]
    g.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    sess = load(model.SerializeToString(), runtime="onnxruntime", provider="cpu", threads=threads,
                optimization="basic")
    got: dict[str, list] = {n: [] for n in names}
    shapes = None
    if perturb is not None:  # the tensor's shape per batch, from the unperturbed model
        shapes = _shapes(float_proto, perturb[0], batches, threads)
    rng = np.random.default_rng(seed)
    for k, feeds in enumerate(batches):
        feeds = dict(feeds)
        if perturb is not None:
            signs = (rng.integers(0, 2, size=shapes[k]) * 2 - 1) * (rng.random(shapes[k]) < FLIP_RATE)
            feeds[_DELTA] = signs.astype(np.float32) * np.float32(perturb[1])
        for n, v in zip(names, sess.native.run(names, feeds)):
            got[n].append(np.asarray(v, np.float64))
    return {n: np.concatenate([np.atleast_1d(x) for x in v]) for n, v in got.items()}


def _shapes(float_proto, tensor: str, batches: list[dict], threads) -> list[tuple]:
    onnx = require("onnx", "Quantizing ONNX models")
    from edgekit.runtimes import load
    model = onnx.ModelProto()
    model.CopyFrom(float_proto)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    sess = load(model.SerializeToString(), runtime="onnxruntime", provider="cpu", threads=threads,
                optimization="basic")
    return [np.shape(sess.native.run([tensor], feeds)[0]) for feeds in batches]


def _sort(model) -> None:
    """Topological order after appending the perturbing Add (ORT needs producers first)."""
    g = model.graph
    ready = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    nodes, order = list(g.node), []
    while nodes:
        rest = []
        for n in nodes:
            if all(i in ready for i in n.input):
                order.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(nodes):  # a cycle or an outer-scope name (subgraphs): keep the remaining order
            order += rest
            break
        nodes = rest
    del g.node[:]
    g.node.extend(order)

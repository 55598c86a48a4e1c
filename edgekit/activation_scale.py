"""The scale of the float activations an output is computed from, so a float model's validation judges rounding
against the size of the numbers that were rounded, not against 1.

Why: the default absolute tolerance (1e-5 in float32) assumes activations of order one. A deep random-weight net
shrinks its activations layer by layer to outputs of 1e-14; against atol=1e-5 any answer passes, zeros included
(cosine 0: a false pass). Judged against the output alone, an output that is the small difference of large
activations (x - y, a residual that cancels) would fail on rounding it cannot avoid. The activation scale of an
output is therefore the largest |value| among the output and the float inputs of the op that computes it (looking
through ops that only move or (de)quantize values), on the validation's own seeded inputs: the absolute tolerance
becomes atol × min(1, that scale) — never larger than the gate's own atol, only smaller where the model's numbers
are small.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: ops that move, relabel or (de)quantize values: an output made by one of them is computed by the op before it
PASS_THROUGH = {"Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Cast", "QuantizeLinear",
                "DequantizeLinear"}


def computing_inputs(model, output: str) -> list[str]:
    """The non-constant inputs of the op that computes `output` (through PASS_THROUGH ops), or [] if a graph input."""
    producers = {o: n for n in model.graph.node for o in n.output}
    constant = {t.name for t in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    name, seen = output, set()
    while name in producers and name not in seen:
        seen.add(name)
        node = producers[name]
        data = [i for i in node.input if i and i not in constant]
        if node.op_type not in PASS_THROUGH or not data:
            return data
        name = data[0]
    return []


def activation_scales(onnx_source, input_shapes: dict, seed: int = 0) -> dict[str, float]:
    """{output: max |value| of the output and of its computing op's float inputs} for ONNX Runtime on the inputs
    of the validation's first sample (the same seeded arrays convert.validate_tflite feeds)."""
    import onnx

    from edgekit import runtimes
    from edgekit.inputs import validation_feeds
    data = Path(onnx_source).read_bytes() if not isinstance(onnx_source, bytes) else onnx_source
    model = onnx.load_from_string(data)
    outputs = [o.name for o in model.graph.output]
    sources = {o: computing_inputs(model, o) for o in outputs}
    extra = sorted({s for names in sources.values() for s in names} - set(outputs) - {i.name for i in model.graph.input})
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(s) for s in extra)
    with runtimes.load(model.SerializeToString(), runtime="onnxruntime", threads=1) as ref:
        feeds = validation_feeds(ref.inputs, input_shapes, seed)
        values = ref.run(feeds)
    values.update(feeds)

    def largest(name):
        v = np.asarray(values.get(name, 0.0))
        if not np.issubdtype(v.dtype, np.floating) or v.size == 0:
            return 0.0
        v = np.abs(v[np.isfinite(v)].astype(np.float64))
        return float(v.max()) if v.size else 0.0

    return {o: max([largest(o)] + [largest(s) for s in sources[o]]) for o in outputs}


def scaled_atol(atol: float, activation_scale: float | None) -> float:
    """The absolute tolerance at this activation scale: atol where activations are of order one or more, smaller
    in proportion where they are smaller (never larger than atol)."""
    if activation_scale is None or not np.isfinite(activation_scale):
        return atol
    return atol * min(1.0, activation_scale)

"""Float islands of an INT8 model: ops the QDQ folding left in float (kept float by the quantizer, or without an
integer kernel here) compute in float32 between the DEQUANTIZE / QUANTIZE their Q/DQ nodes lower to.

    DQ(a_q) -> Op -> Q  ==  DEQUANTIZE ; Op (float32) ; QUANTIZE        (nothing is rewritten: each island is
                                                                        recorded in graph.quantization["islands"])
"""
from __future__ import annotations

from edgekit.converters.tflite.ir import Graph
from edgekit.converters.tflite.registry import lookup

QDQ = ("QuantizeLinear", "DequantizeLinear")


def run(graph: Graph, options=None) -> None:
    if graph.quantization.get("mode") != "int8":
        return
    floats = [n for n in graph.nodes if n.op_type not in QDQ and n.domain in ("", "ai.onnx") and _computes_float(graph, n)]
    if not floats:
        graph.quantization["islands"] = []
        return
    # group float nodes joined by float values into islands (union-find over value names)
    parent = {id(n): id(n) for n in floats}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    made = {o: n for n in floats for o in n.outputs if o}
    for node in floats:
        for name in node.inputs:
            if name in made:
                parent[find(id(node))] = find(id(made[name]))
    groups: dict = {}
    for node in floats:
        groups.setdefault(find(id(node)), []).append(node)
    islands = []
    for nodes in groups.values():
        islands.append({"nodes": [n.name for n in nodes], "ops": sorted({n.op_type for n in nodes}),
                        "reason": _reason(graph, nodes, set(getattr(options, "float_nodes", ()) or ()))})
    graph.quantization["islands"] = islands


def _computes_float(graph: Graph, node) -> bool:
    values = [graph.value(n) for n in list(node.inputs) + list(node.outputs) if n]
    data = [v for v in values if v is not None and not v.is_const]
    return any(v.dtype.name == "float32" for v in data)


def _reason(graph: Graph, nodes, measured=frozenset()) -> str:
    kept = graph.quantization.get("kept_float", {})  # passes.qdq: ops LiteRT has no int8 kernel for, as quantized
    named = sorted(n.name for n in nodes if n.name in kept)
    if named:
        return f"{'; '.join(sorted({kept[n] for n in named}))} ({', '.join(named)}): computed in float32"
    chosen = sorted(n.name for n in nodes if n.name in measured)
    if chosen:
        return (f"measured: the int8 kernel of {', '.join(chosen)} differed from ONNX Runtime's QDQ model "
                f"(edgekit.int8_islands): computed in float32")
    no_kernel = sorted({n.op_type for n in nodes if (e := lookup(n.op_type, graph.opset, n.domain)) is None or "int8" not in e.dtypes})
    if no_kernel:
        return f"no integer kernel for {', '.join(no_kernel)} in this compiler: computed in float32"
    return ("kept in float by the quantizer (no QuantizeLinear/DequantizeLinear around it: e.g. a mask fill, or a "
            "normalisation's input whose rounding it amplifies, named in the QDQ model's edgekit.quantization "
            "'amplified_tensors'): computed in float32")

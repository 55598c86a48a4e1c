"""QDQ folding: QuantizeLinear/DequantizeLinear pairs become the quantization parameters of int8 tensors, and
ops between them run on those int8 tensors.

    DequantizeLinear(const w_q, s, z)                -> const w_q  (int8/int32, quant {s, z, axis})
    y = Op(DQ(a_q), DQ(b_q)); y_q = Q(y, s, z)        -> y_q = Op(a_q, b_q)   (Op has an int8 lowering)
    Q(DQ(a_q), s, z)                                 -> Q(a_q) (requantize); -> a_q when the parameters match
    x -> Q -> x_q (model input), DQ(y_q) -> y (model output), with int8_io -> x_q and y_q are the model's I/O

    y = Add(DQ(a_q), DQ(b_q)); Q(y)  stays as it is where LiteRT has no int8 kernel for the op as quantized: an ADD
    y = Conv3D(DQ(a_q), w); Q(y)    that cannot rescale between those scales, a 3-D convolution (a float island,
                                    its reason in quantization["kept_float"] and the conversion's islands)

uint8 tensors become int8 with the zero point shifted by -128 (exact). What is left of Q/DQ lowers to
QUANTIZE/DEQUANTIZE: at the float model inputs and outputs, and around float islands.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.registry import lookup

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def run(graph: Graph, options=None) -> None:
    if not any(n.op_type in (Q, DQ) and n.domain in ("", "ai.onnx") for n in graph.nodes):
        return
    graph.quantization.setdefault("mode", "int8")
    notes = graph.quantization.setdefault("notes", [])
    _fold_constant_dequantize(graph, notes)
    _type_quantized_values(graph)
    keep_float = set(getattr(options, "float_nodes", ()) or ())
    while _fuse_one(graph, keep_float):
        pass
    _merge_requantize(graph)
    _float_constants(graph)
    graph.prune()
    if getattr(options, "int8_io", False):
        _integer_io(graph)
        graph.prune()


def _const(graph: Graph, name: str):
    value = graph.value(name)
    return value.const if value is not None and value.is_const else None


def _params(graph: Graph, node: Node) -> dict | None:
    """The (int8) parameters a Q/DQ node names, or None when its scale is not a constant."""
    scale = _const(graph, node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None:
        return None
    zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zp = _const(graph, zp_name) if zp_name else np.zeros(np.shape(scale), np.uint8)
    if zp is None:
        return None
    data = graph.value(node.inputs[0])
    rank = data.rank if data is not None and data.shape is not None else 1
    axis = int(node.attrs.get("axis", 1)) % max(rank, 1) if np.size(scale) > 1 else 0
    quant = qz.params(scale, zp, axis)
    if zp.dtype == np.uint8:
        quant = qz.shift_uint8(None, quant)[1]
    quant["storage"] = zp.dtype.name
    return quant


def _fold_constant_dequantize(graph: Graph, notes: list) -> None:
    dead = []
    for node in graph.nodes:
        if node.op_type != DQ or _const(graph, node.inputs[0]) is None or node.attrs.get("block_size"):
            continue
        quant = _params(graph, node)
        if quant is None:
            continue
        data = _const(graph, node.inputs[0])
        if data.dtype == np.uint8:
            data = qz.shift_uint8(data, quant)[0]
        elif data.dtype not in (np.int8, np.int32):
            continue
        quant.pop("storage")
        out = graph.values[node.outputs[0]]
        out.const, out.dtype, out.shape, out.quant = data, data.dtype, tuple(data.shape), quant
        dead.append(node)
    graph.remove_nodes(dead)


def _type_quantized_values(graph: Graph) -> None:
    """Q outputs become int8 values carrying their parameters (uint8 ones shifted)."""
    for node in graph.nodes:
        if node.op_type == Q and node.domain in ("", "ai.onnx"):
            quant = _params(graph, node)
            out = graph.values[node.outputs[0]]
            if quant is not None and quant.pop("storage") in ("uint8", "int8") and len(quant["scale"]) == 1:
                out.dtype, out.quant = np.dtype(np.int8), quant


def _dq_source(graph: Graph, producers: dict, name: str) -> str | None:
    """The int8 value behind `name` when `name` is the output of a DequantizeLinear of a quantized value."""
    dq = producers.get(name)
    if dq is None or dq.op_type != DQ:
        return None
    source = graph.value(dq.inputs[0])
    return source.name if source is not None and source.quant is not None and not source.is_const else None


def _fuse_one(graph: Graph, keep_float=frozenset()) -> bool:
    """Fold one op between its DQ inputs and Q outputs; nodes in `keep_float` (islands the conversion measured)
    stay float."""
    producers, consumers = graph.producers(), graph.consumers()
    for node in graph.nodes:
        if node.op_type in (Q, DQ) or node.domain not in ("", "ai.onnx") or node.name in keep_float:
            continue
        entry = lookup(node.op_type, graph.opset, node.domain)
        if entry is None or "int8" not in entry.dtypes:
            continue
        sources = {}
        for i, name in enumerate(node.inputs):
            value = graph.value(name)
            if value is None or value.is_const:
                continue
            source = _dq_source(graph, producers, name)
            if source is None:
                break
            sources[i] = source
        else:
            targets = _quantized_outputs(graph, node, consumers)
            if not sources or targets is None:
                continue
            why = _no_int8_kernel(graph, node, sources, targets)
            if why:
                graph.quantization.setdefault("kept_float", {})[node.name] = why
                continue
            drop = {id(q) for name in node.outputs if name for q in consumers.get(name, [])}
            for i, source in sources.items():
                node.inputs[i] = source
            for j, (q_out, others) in targets.items():
                node.outputs[j] = q_out
                _replace_uses(graph, {o: q_out for o in others})
            graph.nodes = [n for n in graph.nodes if id(n) not in drop]
            graph.prune()
            return True
    return False


def _no_int8_kernel(graph: Graph, node: Node, sources: dict, targets: dict) -> str:
    """Why LiteRT has no int8 kernel for this op as quantized (it then stays between its DequantizeLinear and
    QuantizeLinear, computed in float32 as ONNX Runtime computes it), or ''."""
    x = graph.value(node.inputs[0])
    if node.op_type in ("Conv", "ConvTranspose") and x is not None and x.shape is not None and x.rank == 5:
        return "TFLite's CONV_3D has no int8 kernel (float32 only)"
    if node.op_type in ("Add", "Sub") and not _int8_add_rescales(graph, node, sources, targets):
        return ("LiteRT's int8 ADD/SUB cannot rescale between these scales (its multiplier 2·max(input scale)/"
                "(2^20·output scale) would leave (0, 1))")
    return ""


def _int8_add_rescales(graph: Graph, node: Node, sources: dict, targets: dict) -> bool:
    """Whether LiteRT's int8 ADD/SUB can rescale from these operands to the output (quantization.add_multiplier in
    (0, 1)). When it cannot — an operand calibrated all-zero gets scale 1 beside a sum of scale 1e-38 (MobileViT with
    random weights) — the op stays between its DequantizeLinear and QuantizeLinear, computed in float32 as ONNX
    Runtime computes it, instead of refusing the model. A constant the output's parameters hold exactly does not
    count: passes.requantize moves it there."""
    out = graph.values[next(iter(targets.values()))[0]].quant
    if not qz.per_tensor(out):
        return True
    scales = [graph.value(s).quant["scale"][0] for s in sources.values() if graph.value(s).quant]
    for i, name in enumerate(node.inputs):
        value = graph.value(name) if i not in sources else None
        if value is not None and value.is_const and value.quant and qz.per_tensor(value.quant) and \
                qz.moved_exactly(value.const, value.quant, out) is None:
            scales.append(value.quant["scale"][0])
    return not scales or 0.0 < qz.add_multiplier(scales, out["scale"][0]) < 1.0


def _quantized_outputs(graph: Graph, node: Node, consumers: dict):
    """{output index: (the Q output it becomes, other equal Q outputs)} if every output is read only by Qs."""
    found = {}
    for j, name in enumerate(node.outputs):
        if not name:
            continue
        readers = consumers.get(name, [])
        if not readers or name in graph.outputs or any(r.op_type != Q for r in readers):
            return None
        outs = [graph.values[r.outputs[0]] for r in readers]
        if any(o.quant is None or not qz.same(o.quant, outs[0].quant) for o in outs):
            return None
        found[j] = (outs[0].name, [o.name for o in outs[1:]])
    return found or None


def _replace_uses(graph: Graph, mapping: dict) -> None:
    if not mapping:
        return
    for node in graph.nodes:
        node.inputs = [mapping.get(i, i) for i in node.inputs]
    graph.outputs = [mapping.get(o, o) for o in graph.outputs]


def _merge_requantize(graph: Graph) -> None:
    """Q(DQ(a)) reads a directly: a requantization, or nothing when the parameters are the same."""
    producers = graph.producers()
    dead = []
    for node in graph.nodes:
        if node.op_type != Q:
            continue
        source = _dq_source(graph, producers, node.inputs[0])
        out = graph.values[node.outputs[0]]
        if source is None or out.quant is None:
            continue
        if qz.same(graph.values[source].quant, out.quant) and node.outputs[0] not in graph.outputs:
            _replace_uses(graph, {node.outputs[0]: source})
            dead.append(node)
        else:
            node.inputs = [source]
    graph.remove_nodes(dead)


def _float_constants(graph: Graph) -> None:
    """A dequantized constant read by a float op (no integer kernel, or a float island) is folded back to float;
    dense weights keep their int8 form (integer or hybrid kernels take them)."""
    dense = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,)}
    readers = graph.consumers()
    for value in list(graph.values.values()):
        if not value.is_const or value.quant is None:
            continue
        for node in readers.get(value.name, []):
            if any(node.inputs[k] == value.name for k in dense.get(node.op_type, ()) if k < len(node.inputs)):
                continue
            data = [graph.value(n) for n in node.inputs if n and not graph.value(n).is_const]
            if node.op_type not in (Q, DQ) and data and all(v.quant is not None for v in data):
                continue  # an integer op: its constant operands stay int8
            value.const, value.dtype, value.quant = qz.dequantize(value.const, value.quant), np.dtype(np.float32), None
            break


def _integer_io(graph: Graph) -> None:
    """Model inputs read only through QuantizeLinear, and outputs made by DequantizeLinear, become int8."""
    io = graph.quantization.setdefault("io", {})
    consumers, producers = graph.consumers(), graph.producers()
    for name in graph.inputs:
        readers = consumers.get(name, [])
        outs = [graph.values[r.outputs[0]] for r in readers]
        if not readers or any(r.op_type != Q for r in readers) or name in graph.outputs \
                or any(o.quant is None or not qz.same(o.quant, outs[0].quant) for o in outs):
            continue
        value = graph.values[name]
        value.dtype, value.quant = np.dtype(np.int8), dict(outs[0].quant)
        _replace_uses(graph, {o.name: name for o in outs})
        graph.remove_nodes(readers)
        io[name] = _io_entry(value.quant)
    for idx, name in enumerate(list(graph.outputs)):
        dq = producers.get(name)
        source = _dq_source(graph, producers, name) if dq is not None else None
        if source is None or source in graph.inputs or graph.outputs.count(name) > 1:
            continue
        value = graph.values[name]
        value.dtype, value.quant = np.dtype(np.int8), dict(graph.values[source].quant)
        graph.remove_nodes([dq])
        for node in graph.nodes:
            node.inputs = [name if i == source else i for i in node.inputs]
            node.outputs = [name if o == source else o for o in node.outputs]
        graph.outputs = [name if o == source else o for o in graph.outputs]
        io[name] = _io_entry(value.quant)


def _io_entry(quant: dict) -> dict:
    return {"dtype": "int8", "scale": quant["scale"][0], "zero_point": quant["zero_point"][0]}


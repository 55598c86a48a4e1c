"""Quantization points as tensors: which float tensors a QDQ model quantizes, and keeping chosen ones in float.

Quantization error lives on tensors (one Q/DQ pair each), not on nodes: a tensor with several producers' and
consumers' worth of neighbours is quantized once, and excluding a *node* from ORT's quantizer (`nodes_to_exclude`)
neither removes the Q/DQ on a tensor another quantized node touches nor leaves the node's other inputs alone.
ORT has no per-tensor "leave in float" option either (`TensorQuantOverrides` only changes a tensor's type, scale
or range). So the candidate is built with everything quantized and then edited, which is exact by construction:

- an activation kept in float loses its QuantizeLinear/DequantizeLinear; every consumer reads the float value
  (a graph output gets its own name back on its producer);
- a weight kept in float has its DequantizeLinear replaced by the float initializer;
- ORT folds a ReLU/Clip after Conv/Gemm into its producer's output quantization (the producer writes the
  activation's name and the ReLU is gone); keeping that tensor in float re-inserts the activation, or the
  consumers would read pre-activation values.
"""
from __future__ import annotations

import numpy as np

REMOVABLE = ("Relu", "Clip")


def quantized_tensors(float_proto, quant_proto) -> dict[str, str]:
    """Float tensor name → 'activation' or 'weight', for every tensor the QDQ model quantizes, in graph order."""
    float_names = {o for n in float_proto.graph.node for o in n.output} | {i.name for i in float_proto.graph.input}
    found: dict[str, str] = {}
    consumers = _consumers(quant_proto)
    for q in quant_proto.graph.node:
        if q.op_type != "QuantizeLinear":
            continue
        name = q.input[0]
        if name not in float_names:  # a quantized graph output: the DequantizeLinear writes the float name
            dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None)
            name = dq.output[0] if dq is not None else None
        if name in float_names:
            found.setdefault(name, "activation")
    for name in weight_dequantizers(float_proto, quant_proto):
        found.setdefault(name, "weight")
    return found


def weight_dequantizers(float_proto, quant_proto) -> dict[str, object]:
    """Float weight name → the DequantizeLinear node that replaces it (8-bit weights; int32 biases are left out)."""
    import onnx
    inits = {t.name: t for t in quant_proto.graph.initializer}
    float_inits = {t.name for t in float_proto.graph.initializer}
    producers = {o: n for n in quant_proto.graph.node for o in n.output}
    float_nodes = {n.name: n for n in float_proto.graph.node if n.name}
    out = {}
    for node in quant_proto.graph.node:
        twin = float_nodes.get(node.name)
        if twin is None or node.op_type == "DequantizeLinear":
            continue
        for k, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or k >= len(twin.input):
                continue
            q = inits.get(dq.input[0])
            if q is None or q.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
                continue
            if twin.input[k] in float_inits:
                out[twin.input[k]] = dq
    return out


def keep_float(quant_proto, float_proto, tensors) -> list[str]:
    """Remove the quantization of `tensors` from `quant_proto` (in place); → the names that had none."""
    from onnx import numpy_helper
    graph = quant_proto.graph
    float_inits = {t.name: t for t in float_proto.graph.initializer}
    float_producers = {o: n for n in float_proto.graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    weights = weight_dequantizers(float_proto, quant_proto)
    missing, drop = [], set()
    for t in tensors:
        consumers = _consumers(quant_proto)
        producers = {o: n for n in graph.node for o in n.output}
        if t in weights:
            dq = weights[t]
            if t not in {i.name for i in graph.initializer}:
                graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(float_inits[t]), t))
            _rename_inputs(consumers.get(dq.output[0], []), dq.output[0], t)
            drop.add(id(dq))
            continue
        qs = [n for n in graph.node if n.op_type == "QuantizeLinear" and id(n) not in drop
              and (n.input[0] == t or any(c.op_type == "DequantizeLinear" and c.output[0] == t
                                          for c in consumers.get(n.output[0], [])))]
        if not qs:
            missing.append(t)
            continue
        for q in qs:
            value = q.input[0]
            for dq in [c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"]:
                _rename_inputs(consumers.get(dq.output[0], []), dq.output[0], value)
                drop.add(id(dq))
            drop.add(id(q))
            if value != t and t in outputs:  # a graph output: its producer writes the float name again
                producer = producers.get(value)
                for k, name in enumerate(producer.output):
                    if name == value:
                        producer.output[k] = t
                _rename_inputs(consumers.get(value, []), value, t)
        _restore_folded_activation(quant_proto, float_proto, float_producers.get(t), t)
    keep = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(keep)
    _drop_unused_initializers(quant_proto)
    return missing


def _restore_folded_activation(quant_proto, float_proto, float_node, t: str) -> None:
    """If ORT folded the ReLU/Clip producing `t` into its producer, put it back between them."""
    graph = quant_proto.graph
    if float_node is None or float_node.op_type not in REMOVABLE:
        return
    if any(n.name == float_node.name and n.op_type == float_node.op_type for n in graph.node):
        return
    producer = next((n for n in graph.node if t in n.output), None)
    if producer is None:
        return
    import onnx
    inner = float_node.input[0]
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    if inner in taken:
        inner = f"{t}_before_{float_node.op_type.lower()}"
    producer.output[list(producer.output).index(t)] = inner
    restored = onnx.NodeProto()
    restored.CopyFrom(float_node)
    restored.input[0] = inner
    float_inits = {i.name: i for i in float_proto.graph.initializer}
    for name in restored.input[1:]:  # Clip's bounds come along from the float model
        if name and name not in taken and name in float_inits:
            graph.initializer.append(float_inits[name])
    nodes = list(graph.node)
    at = next(i for i, n in enumerate(nodes) if n is producer)
    graph.node.insert(at + 1, restored)


def _consumers(proto) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _rename_inputs(nodes, old: str, new: str) -> None:
    for n in nodes:
        for k, name in enumerate(n.input):
            if name == old:
                n.input[k] = new


def _drop_unused_initializers(proto) -> None:
    used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
    keep = [t for t in proto.graph.initializer if t.name in used]
    if len(keep) != len(proto.graph.initializer):
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(keep)


def fake_quant_weight(dq, inits) -> np.ndarray | None:
    """The dequantized value of a weight's DequantizeLinear (per-tensor or per-axis)."""
    from onnx import numpy_helper
    get = lambda i: numpy_helper.to_array(inits[dq.input[i]]) if len(dq.input) > i and dq.input[i] in inits else None
    q, scale, zp = get(0), get(1), get(2)
    if q is None or scale is None:
        return None
    zp = np.zeros_like(scale, dtype=np.int64) if zp is None else zp.astype(np.int64)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int64) - zp) * scale).astype(np.float32)

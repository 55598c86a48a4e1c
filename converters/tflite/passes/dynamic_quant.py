"""ONNX dynamic quantization (onnxruntime's quantize_dynamic) back to dense ops with int8 weights, which lower
to TFLite's hybrid kernels (float activations quantized on the fly, int8 weights):

    xq, xs, xz = DynamicQuantizeLinear(x)
    y = Mul(Cast(MatMulInteger(xq, w_q, xz, w_z), to=float), Mul(xs, w_s))   -> y = MatMul(x, w_q{w_s, w_z})
    (ConvInteger likewise                                                     -> y = Conv(x, w_q{w_s, w_z}, attrs))

    MatMulInteger(Transpose(xq), ...)        -> MatMul(Transpose(x), w_q{...})   (movement done in float)
    DequantizeLinear(Transpose(xq), xs, xz)  -> Transpose(x)                     (the round trip dropped)
    DequantizeLinear(Gather(table_q, ids))          -> Gather(table, ids)     (the table dequantized at compile time)
    DynamicQuantizeLSTM(x, W_q, R_q, ...) [com.microsoft] -> LSTM(x, W, R, ...)   (float weights, which the
                                                            dynamic_range pass quantizes again per channel)

The weights are made symmetric per channel by the int8_weights pass when they are not already.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.ir import Graph, Node, Value

INTEGER_OPS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}
CONTRIB = {"DynamicQuantizeLSTM"}
#: data movement that may sit between DynamicQuantizeLinear and the integer op (see _match)
MOVES = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def run(graph: Graph, options=None) -> None:
    if not any(n.op_type in INTEGER_OPS or n.op_type in CONTRIB for n in graph.nodes):
        return
    graph.quantization["mode"] = "dynamic"
    notes = graph.quantization.setdefault("notes", [])
    _gather_tables(graph, notes)
    _dequantized_moves(graph, notes)
    _lstm(graph, notes)
    producers, consumers = graph.producers(), graph.consumers()
    dead = []
    for node in list(graph.nodes):  # _match may insert float data movement before a node
        if node.op_type not in INTEGER_OPS:
            continue
        match = _match(graph, node, producers, consumers)
        if match is None:
            continue
        x, quant, cast, mul, scale_mul = match
        weight = graph.values[node.inputs[1]]
        data = weight.const
        if data.dtype == np.uint8:
            data, quant = qz.shift_uint8(data, quant)
        weight.const, weight.dtype, weight.quant = data, data.dtype, quant
        node.op_type = INTEGER_OPS[node.op_type]
        node.inputs = [x, weight.name]
        node.outputs = [mul.outputs[0]]
        dead += [cast, mul]
        if len(consumers.get(scale_mul.outputs[0], [])) == 1:
            dead.append(scale_mul)
    graph.remove_nodes(dead)
    graph.prune()
    rewritten = sum(1 for n in graph.nodes if n.op_type in ("MatMul", "Conv") and graph.value(n.inputs[1]).quant)
    leftover = sorted({n.op_type for n in graph.nodes if n.op_type in INTEGER_OPS or n.op_type == "DynamicQuantizeLinear"})
    notes.append(f"dynamic quantization: {rewritten} MatMulInteger/ConvInteger pattern(s) became hybrid int8 ops"
                 + (f"; left unmatched: {leftover}" if leftover else ""))


def _const(graph: Graph, name: str):
    value = graph.value(name) if name else None
    return value.const if value is not None and value.is_const else None


def _match(graph: Graph, node: Node, producers: dict, consumers: dict):
    """(float input, weight parameters, Cast, final Mul, scale Mul) of one integer op's pattern, or None.

    Data movement between DynamicQuantizeLinear and the integer op (SegFormer transposes the quantized tensor) moves
    to the float side: it commutes with per-tensor quantization, and the hybrid kernel quantizes what it reads."""
    moves, source = [], node.inputs[0]
    while producers.get(source) is not None and producers[source].op_type in MOVES and source not in graph.outputs:
        moves.append(producers[source])
        source = producers[source].inputs[0]
    dql = producers.get(source)
    if dql is None or dql.op_type != "DynamicQuantizeLinear":
        return None
    if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] != dql.outputs[2]:
        return None
    weight = _const(graph, node.inputs[1])
    w_zp = _const(graph, node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else np.zeros((), weight.dtype if weight is not None else np.int8)
    if weight is None or w_zp is None:
        return None
    users = consumers.get(node.outputs[0], [])
    cast = users[0] if len(users) == 1 and users[0].op_type == "Cast" else None
    if cast is None or node.outputs[0] in graph.outputs:
        return None
    users = consumers.get(cast.outputs[0], [])
    mul = users[0] if len(users) == 1 and users[0].op_type == "Mul" else None
    if mul is None:
        return None
    other = mul.inputs[1] if mul.inputs[0] == cast.outputs[0] else mul.inputs[0]
    scale_mul = producers.get(other)
    if scale_mul is None or scale_mul.op_type != "Mul" or dql.outputs[1] not in scale_mul.inputs:
        return None
    w_scale = _const(graph, next(i for i in scale_mul.inputs if i != dql.outputs[1]))
    if w_scale is None:
        return None
    axis = 0 if node.op_type == "ConvInteger" else weight.ndim - 1
    return _float_moves(graph, node, moves, dql.inputs[0]), qz.params(w_scale, w_zp, axis), cast, mul, scale_mul


def _float_moves(graph: Graph, node: Node, moves: list, x: str, last: str = "") -> str:
    """The data movement `moves` (read back from `node`) redone on the float input `x`, just before `node`, the last
    one writing `last` if given; → what `node` reads then. The integer chain stays for any other reader, and is
    pruned when none is left."""
    at = graph.nodes.index(node)
    for k, move in enumerate(reversed(moves)):
        old = graph.values[move.outputs[0]]
        out = last if last and k == len(moves) - 1 else \
            graph.add_value(Value(f"{old.name}/float", np.dtype(np.float32), old.shape)).name
        graph.nodes.insert(at, Node(move.op_type, f"{move.name}/float", [x, *move.inputs[1:]], [out],
                                    dict(move.attrs), move.domain, move.module))
        at, x = at + 1, out
    return x


def _dequantized_moves(graph: Graph, notes: list) -> None:
    """DequantizeLinear(moves(DynamicQuantizeLinear(x)), its scale, its zero point) -> moves(x) in float32.

    onnxruntime's quantize_dynamic quantizes a Transpose/Reshape whose input it already quantized for a MatMulInteger
    and dequantizes after it (SegFormer); in TFLite the hybrid kernels quantize what they read, so the round trip is
    dropped (a difference of at most half an input step, within the dynamic-range gate) and the move runs in float."""
    producers = graph.producers()
    dead = []
    for dq in list(graph.nodes):
        if dq.op_type != "DequantizeLinear" or len(dq.inputs) < 3:
            continue
        moves, source = [], dq.inputs[0]
        while producers.get(source) is not None and producers[source].op_type in MOVES:
            moves.append(producers[source])
            source = producers[source].inputs[0]
        dql = producers.get(source)
        if not moves or dql is None or dql.op_type != "DynamicQuantizeLinear" or dq.inputs[1:3] != dql.outputs[1:3]:
            continue
        _float_moves(graph, dq, moves, dql.inputs[0], last=dq.outputs[0])
        dead.append(dq)
        notes.append(f"{dq.name} (DequantizeLinear): the quantize-dequantize round trip around "
                     f"{', '.join(m.op_type for m in reversed(moves))} is dropped; the data movement runs in float32")
    graph.remove_nodes(dead)
    graph.prune()


def _dequantized_const(graph: Graph, data_name: str, scale_name: str, zp_name: str, axis: int):
    data, scale = _const(graph, data_name), _const(graph, scale_name)
    zp = _const(graph, zp_name) if zp_name else np.zeros(np.shape(scale), np.int8)
    if data is None or scale is None or zp is None or data.dtype not in (np.int8, np.uint8):
        return None
    quant = qz.params(scale, zp, axis % data.ndim if np.size(scale) > 1 else 0)
    return qz.dequantize(data, quant)


def _gather_tables(graph: Graph, notes: list) -> None:
    consumers = graph.consumers()
    dead = []
    for node in graph.nodes:
        if node.op_type != "Gather" or _const(graph, node.inputs[0]) is None:
            continue
        users = consumers.get(node.outputs[0], [])
        dq = users[0] if len(users) == 1 and users[0].op_type == "DequantizeLinear" else None
        if dq is None or node.outputs[0] in graph.outputs:
            continue
        table = _dequantized_const(graph, node.inputs[0], dq.inputs[1], dq.inputs[2] if len(dq.inputs) > 2 else "",
                                   int(dq.attrs.get("axis", 1)))
        if table is None or np.size(_const(graph, dq.inputs[1])) != 1:
            continue
        value = graph.add_value(Value(f"{node.name}/table", np.dtype(np.float32), table.shape, const=table))
        node.inputs[0] = value.name
        node.outputs = [dq.outputs[0]]
        dead.append(dq)
        notes.append(f"{node.name} (Gather): the int8 embedding table is dequantized at compile time (float32)")
    graph.remove_nodes(dead)
    graph.prune()


def _lstm(graph: Graph, notes: list) -> None:
    """DynamicQuantizeLSTM's inputs: X, W[dirs, in, 4h], R[dirs, h, 4h], B, sequence_lens, initial_h, initial_c, P,
    W_scale, W_zero_point, R_scale, R_zero_point (scales per direction, or per direction and gate column)."""
    for node in graph.nodes:
        if node.op_type != "DynamicQuantizeLSTM" or node.domain != "com.microsoft" or len(node.inputs) < 12:
            continue
        weights = []
        for data, scale, zp in ((1, 8, 9), (2, 10, 11)):
            arr = _const(graph, node.inputs[data])
            s = _const(graph, node.inputs[scale])
            z = _const(graph, node.inputs[zp])
            if arr is None or s is None or z is None:
                break
            shape = [arr.shape[0], 1, arr.shape[2]] if np.size(s) > arr.shape[0] else [arr.shape[0], 1, 1]
            real = (arr.astype(np.float32) - np.reshape(z, shape).astype(np.float32)) * np.reshape(s, shape)
            weights.append(np.ascontiguousarray(real.transpose(0, 2, 1)))  # -> ONNX [dirs, 4h, in]
        else:
            names = [graph.add_value(Value(f"{node.name}/{tag}", np.dtype(np.float32), w.shape, const=w)).name
                     for tag, w in zip(("W", "R"), weights)]
            node.op_type, node.domain = "LSTM", ""
            node.inputs = [node.inputs[0], *names, *node.inputs[3:8]]
            while node.inputs and not node.inputs[-1]:
                node.inputs.pop()
            graph.quantization["requantize_float_weights"] = True
            notes.append(f"{node.name} (DynamicQuantizeLSTM): rewritten as an ONNX LSTM; its weights are quantized "
                         f"again (int8 per channel) for TFLite's hybrid fully connected kernels")

"""LayerNorm fusion: the decomposed layer normalisation older exporters and hand-written modules emit
becomes one LayerNormalization node (lowered to MEAN / SUB / MUL / RSQRT / ADD with no POW, SQRT or DIV).

    d = Sub(x, ReduceMean(x, axes));  v = ReduceMean(Pow(d, 2), axes)
    Add(Mul(Div(d, Sqrt(Add(v, eps))), gamma), beta) -> LayerNormalization<axis, epsilon>(x, gamma, beta)

`Mul(d, d)` may stand for `Pow(d, 2)`; the affine Mul/Add are folded in only when gamma/beta are constants
over the normalised axes, and are optional. The axes must be the trailing ones. A mean subtraction that feeds
both a square and a division (a LayerNorm's shape) but is not fused says why in the notes (passes._declined).
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value
from edgekit.converters.tflite.passes._declined import decline
from edgekit.converters.tflite.passes._patterns import fuse_all, is_scalar, other_input, reduce_axes, scalar, sole_user


def run(graph: Graph, options=None) -> None:
    fuse_all(graph, _fuse_one)


def _fuse_one(graph: Graph) -> bool:
    producers, consumers = graph.producers(), graph.consumers()
    for sub in graph.nodes:
        match = _match(graph, producers, consumers, sub) if sub.op_type == "Sub" else None
        if match is None:
            continue
        x, axis, eps, dead, last, gamma, beta = match
        rank = graph.values[x].rank
        norm_shape = tuple(graph.values[x].shape[axis:])
        scale = graph.add_value(Value(f"{last.name}/ln_scale", np.dtype(np.float32), norm_shape,
                                      const=np.broadcast_to(gamma if gamma is not None else np.float32(1), norm_shape)
                                      .astype(np.float32).copy()))
        inputs = [x, scale.name]
        if beta is not None:
            bias = graph.add_value(Value(f"{last.name}/ln_bias", np.dtype(np.float32), norm_shape,
                                         const=np.broadcast_to(beta, norm_shape).astype(np.float32).copy()))
            inputs.append(bias.name)
        fused = Node("LayerNormalization", f"{last.name}/layernorm", inputs, list(last.outputs),
                     {"axis": axis - rank, "epsilon": float(eps)}, module=last.module)
        graph.nodes[graph.nodes.index(last)] = fused
        graph.remove_nodes([n for n in dead if n is not last])
        return True
    return False


def _match(graph: Graph, producers: dict, consumers: dict, sub: Node):
    x, mean_name = sub.inputs
    mean = producers.get(mean_name)
    xv = graph.value(x)
    if mean is None or mean.op_type != "ReduceMean" or mean.inputs[0] != x or xv is None or xv.shape is None:
        return None
    rank = xv.rank
    axes = reduce_axes(graph, mean, rank)
    if not axes or axes != list(range(axes[0], rank)) or not mean.attrs.get("keepdims", 1):
        return None
    users = list({id(u): u for u in consumers.get(sub.outputs[0], [])}.values())  # Mul(d, d) reads d twice
    if len(users) != 2 or sub.outputs[0] in graph.outputs:
        return None
    square = next((u for u in users if _is_square(graph, u, sub.outputs[0])), None)
    div = next((u for u in users if u.op_type == "Div" and u.inputs[0] == sub.outputs[0]), None)
    if square is None or div is None:
        return None
    var = sole_user(graph, consumers, square.outputs[0], "ReduceMean")
    if var is None or reduce_axes(graph, var, rank) != axes or not var.attrs.get("keepdims", 1):
        return _declined(graph, sub, "the variance is not a ReduceMean of the square over the same axes, read once")
    add_eps = sole_user(graph, consumers, var.outputs[0], "Add")
    eps = scalar(graph, other_input(add_eps, var.outputs[0]) or "") if add_eps is not None else None
    sqrt = sole_user(graph, consumers, add_eps.outputs[0], "Sqrt") if eps is not None else None
    if sqrt is None or graph.sole_consumer(sqrt.outputs[0], consumers) is not div or div.inputs[1] != sqrt.outputs[0]:
        return _declined(graph, sub, "the divisor is not Sqrt(variance + constant epsilon), read once")
    if graph.sole_consumer(mean.outputs[0], consumers) is not sub:
        return _declined(graph, sub, "the mean is read elsewhere")
    dead = [mean, sub, square, var, add_eps, sqrt, div]
    last, gamma, beta = div, None, None
    mul = sole_user(graph, consumers, div.outputs[0], "Mul")
    gamma_name = other_input(mul, div.outputs[0]) if mul is not None else None
    if gamma_name is not None and _affine_const(graph, gamma_name, rank, axes[0]) is not None:
        gamma, last = _affine_const(graph, gamma_name, rank, axes[0]), mul
        dead.append(mul)
        add = sole_user(graph, consumers, mul.outputs[0], "Add")
        beta_name = other_input(add, mul.outputs[0]) if add is not None else None
        if beta_name is not None and _affine_const(graph, beta_name, rank, axes[0]) is not None:
            beta, last = _affine_const(graph, beta_name, rank, axes[0]), add
            dead.append(add)
    return x, axes[0], eps, dead, last, gamma, beta


def _declined(graph: Graph, sub: Node, reason: str) -> None:
    decline(graph, "LayerNorm fusion", f"'{sub.name}'", f"{reason} (the decomposed ops are kept)")


def _is_square(graph: Graph, node: Node, d: str) -> bool:
    if node.op_type == "Pow":
        return node.inputs[0] == d and is_scalar(graph, node.inputs[1], 2.0, rtol=0)
    return node.op_type == "Mul" and node.inputs == [d, d]


def _affine_const(graph: Graph, name: str, rank: int, axis: int):
    """A constant that broadcasts over the normalised axes only, reshaped to them; else None."""
    value = graph.value(name)
    if value is None or not value.is_const or value.const.ndim > rank:
        return None
    data = value.const.reshape((1,) * (rank - value.const.ndim) + value.const.shape)
    if any(d != 1 for d in data.shape[:axis]):
        return None
    return data.reshape(data.shape[axis:])

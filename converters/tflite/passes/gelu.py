"""GELU fusion: the exact (Erf) and tanh-approximated GELU subgraphs become one Gelu node, lowered to
TFLite's GELU builtin with the matching `approximate` flag.

    Mul(x, Mul(0.5, Add(Erf(Div(x, 1.4142)), 1)))                                   -> Gelu(x)
    Mul(x, Mul(0.5, Add(Tanh(Mul(0.7979, Add(x, Mul(0.044715, Pow(x, 3))))), 1)))  -> Gelu<approximate="tanh">(x)

The 0.5, x and (1 + ...) factors may be multiplied in any association (x * 0.5 first, 0.5 last, ...);
`Mul(x, 0.7071)` may stand for the division by sqrt(2) and `Mul(x, Mul(x, x))` for the cube. Every
intermediate must have no other reader; a whole GELU left unfused for that is reported (passes._declined).
"""
from __future__ import annotations

import math

from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.passes._declined import decline
from edgekit.converters.tflite.passes._patterns import fuse_all, is_scalar, other_input, sole_user

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def run(graph: Graph, options=None) -> None:
    fuse_all(graph, _fuse_one)


def _fuse_one(graph: Graph) -> bool:
    producers, consumers = graph.producers(), graph.consumers()
    for node in graph.nodes:
        if node.op_type == "Erf":
            x, approximate = _erf_argument(graph, producers, consumers, node), "none"
        elif node.op_type == "Tanh":
            x, approximate = _tanh_argument(graph, producers, consumers, node), "tanh"
        else:
            continue
        if x is None:
            continue
        plus_one = sole_user(graph, consumers, node.outputs[0], "Add")
        if plus_one is None or not is_scalar(graph, other_input(plus_one, node.outputs[0]) or "", 1.0):
            continue
        found = _outer_product(graph, producers, consumers, plus_one.outputs[0], x)
        if found is None:
            decline(graph, "GELU fusion", f"'{node.name}'", f"{node.op_type}(...) + 1 is not multiplied by 0.5 and x "
                    "alone, or is read elsewhere (its ops are kept)")
            continue
        final, dead = found
        if not _private(graph, consumers, dead, final):
            decline(graph, "GELU fusion", f"'{final.name}'", "an intermediate of the GELU is read elsewhere "
                    "(its ops are kept)")
            continue
        gelu = Node("Gelu", f"{final.name}/gelu", [x], list(final.outputs), {"approximate": approximate},
                    module=final.module)
        graph.nodes[graph.nodes.index(final)] = gelu
        graph.remove_nodes(dead)
        return True
    return False


def _erf_argument(graph, producers, consumers, erf: Node) -> str | None:
    """x of Erf(x / sqrt(2)) or Erf(x * (1 / sqrt(2)))."""
    scaled = producers.get(erf.inputs[0])
    if scaled is None or graph.sole_consumer(scaled.outputs[0], consumers) is not erf:
        return None
    if scaled.op_type == "Div" and is_scalar(graph, scaled.inputs[1], SQRT2):
        return scaled.inputs[0]
    if scaled.op_type == "Mul":
        for i in (0, 1):
            if is_scalar(graph, scaled.inputs[1 - i], 1 / SQRT2):
                return scaled.inputs[i]
    return None


def _tanh_argument(graph, producers, consumers, tanh: Node) -> str | None:
    """x of Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))."""
    scaled = producers.get(tanh.inputs[0])
    if scaled is None or scaled.op_type != "Mul" or graph.sole_consumer(scaled.outputs[0], consumers) is not tanh:
        return None
    inner_name = next((n for n in scaled.inputs if not is_scalar(graph, n, SQRT_2_OVER_PI)), None)
    if inner_name is None or other_input(scaled, inner_name) is None \
            or not is_scalar(graph, other_input(scaled, inner_name), SQRT_2_OVER_PI):
        return None
    inner = producers.get(inner_name)
    if inner is None or inner.op_type != "Add":
        return None
    for x in inner.inputs:
        cubic = producers.get(other_input(inner, x) or "")
        if cubic is not None and cubic.op_type == "Mul" and _is_cubic_term(graph, producers, cubic, x):
            return x
    return None


def _is_cubic_term(graph, producers, mul: Node, x: str) -> bool:
    """mul == 0.044715 * x^3 (Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x))."""
    for i in (0, 1):
        if is_scalar(graph, mul.inputs[1 - i], 0.044715):
            cube = producers.get(mul.inputs[i])
            if cube is None:
                return False
            if cube.op_type == "Pow":
                return cube.inputs[0] == x and is_scalar(graph, cube.inputs[1], 3.0)
            if cube.op_type == "Mul" and x in cube.inputs:
                square = producers.get(other_input(cube, x) or "")
                return square is not None and square.op_type == "Mul" and square.inputs == [x, x]
    return False


def _outer_product(graph, producers, consumers, plus_one: str, x: str):
    """(the Mul giving 0.5 * x * plus_one, the nodes it replaces) for any association of the three factors."""
    first = sole_user(graph, consumers, plus_one, "Mul")
    if first is None:
        return None
    partner = other_input(first, plus_one)
    if partner is None:
        return None
    if is_scalar(graph, partner, 0.5) or partner == x:  # (0.5 * p) * x   or   (x * p) * 0.5
        second = sole_user(graph, consumers, first.outputs[0], "Mul")
        want = x if partner != x else None
        last = other_input(second, first.outputs[0]) if second is not None else None
        if last is None or (last != x if want else not is_scalar(graph, last, 0.5)):
            return None
        return second, _chain_nodes(graph, producers, plus_one, x) + [first]
    half = producers.get(partner)  # (x * 0.5) * p
    if half is not None and half.op_type == "Mul" and x in half.inputs and is_scalar(graph, other_input(half, x) or "", 0.5) \
            and graph.sole_consumer(partner, consumers) is first:
        return first, _chain_nodes(graph, producers, plus_one, x) + [half]
    return None


def _chain_nodes(graph, producers, start: str, x: str) -> list:
    """Every node between x and `start` (inclusive), walking up the producers."""
    dead, stack = [], [start]
    while stack:
        node = producers.get(stack.pop())
        if node is None or any(node is d for d in dead):
            continue
        dead.append(node)
        stack.extend(n for n in node.inputs if n and n != x and not graph.values[n].is_const)
    return dead


def _private(graph, consumers, dead: list, final: Node) -> bool:
    """True if nothing outside the matched nodes reads their intermediates."""
    inside = {id(n) for n in dead} | {id(final)}
    return all(o not in graph.outputs and all(id(u) in inside for u in consumers.get(o, []))
               for node in dead for o in node.outputs if o)

"""Searches over which layers stay in float: the fewest that meet an accuracy budget, and the layer types
whose quantization makes the model slower on this machine."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from edgekit.quantize.build import Plan


@dataclass
class Trial:
    keep_float: list[str]
    drop: float
    ok: bool

    def as_dict(self) -> dict:
        return {"keep_float": self.keep_float, "drop": self.drop, "ok": self.ok}


@dataclass
class SearchResult:
    plan: Plan
    found: bool
    trials: list[Trial] = field(default_factory=list)


def fewest_float_layers(base: Plan, ranked: list[str], drop_of: Callable[[Plan], float], max_drop: float,
                        max_layers: int, progress=None, *, tensors: bool = False) -> SearchResult:
    """Greedy forward over the blame ranking until the drop is within `max_drop`, then backward elimination
    (drop any kept item the budget does not need), so the kept set is minimal for that ranking.

    Items are node names (Plan.keep_float) or, with `tensors`, quantized tensors (Plan.float_tensors)."""
    trials: list[Trial] = []
    field_name = "float_tensors" if tensors else "keep_float"

    def ok(plan: Plan) -> bool:
        drop = drop_of(plan)
        trials.append(Trial(list(getattr(plan, field_name)), drop, drop <= max_drop))
        if progress:
            progress.advance()
        return drop <= max_drop

    if ok(base):
        return SearchResult(base, True, trials)
    plan, added = base, []
    for node in ranked[:max_layers]:
        plan = plan.with_float_tensors(node) if tensors else plan.with_float(node)
        added.append(node)
        if ok(plan):
            break
    else:
        return SearchResult(plan, False, trials)
    for node in list(added[:-1])[::-1]:
        smaller = replace(plan, **{field_name: tuple(n for n in getattr(plan, field_name) if n != node)})
        if ok(smaller):
            plan = smaller
    return SearchResult(plan, True, trials)


def op_groups(float_proto) -> dict[str, list[str]]:
    """Layer types whose quantization can cost time on some CPUs → node names (only groups present)."""
    init = {t.name: t for t in float_proto.graph.initializer}
    groups: dict[str, list[str]] = {"depthwise Conv": [], "elementwise Add/Mul": [], "Gemm/MatMul": [],
                                    "pooling/Concat/Resize": []}
    for n in float_proto.graph.node:
        if n.op_type == "Conv":
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            w = init.get(n.input[1]) if len(n.input) > 1 else None
            if group > 1 and w is not None and w.dims and w.dims[1] == 1:
                groups["depthwise Conv"].append(n.name)
        elif n.op_type in ("Add", "Mul", "Sub"):
            groups["elementwise Add/Mul"].append(n.name)
        elif n.op_type in ("Gemm", "MatMul"):
            groups["Gemm/MatMul"].append(n.name)
        elif n.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Resize"):
            groups["pooling/Concat/Resize"].append(n.name)
    return {k: v for k, v in groups.items() if v}

"""Check every node before lowering; problems from the checks and from lowering are collected and
reported once, as one UnsupportedModelError listing every node."""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

from edgekit.converters.tflite.ir import DYNAMIC, Graph, Node
from edgekit.converters.tflite.registry import INTERNAL, Lowering, Unsupported, lookup, versions_of
from edgekit.errors import UnsupportedModelError

#: ops the compiler evaluates at compile time; they survive only when they depend on run-time values
COMPILE_TIME_ONLY = {"Shape", "Size", "Constant", "ConstantOfShape", "Range", "Expand", "Cast", "Equal", "Where"}
#: ops whose output size depends on the values of their input: a TFLite tensor's size is fixed when it is allocated
DATA_DEPENDENT_SIZE = {"NonZero", "Unique"}


@dataclass
class Problem:
    node: str
    op_type: str
    opset: int
    reason: str
    hint: str = ""

    def line(self) -> str:
        return f"  - {self.node} ({self.op_type}, opset {self.opset}): {self.reason}" + (f" — {self.hint}" if self.hint else "")


def check_graph(graph: Graph) -> list:
    """Static problems of every node: unknown op or opset, attributes, dtypes, unknown or dynamic shapes."""
    problems = []
    for node in graph.nodes:
        try:
            check_node(node, graph)
        except Unsupported as exc:
            problems.append(Problem(node.name, node.op_type, graph.opset, exc.reason, exc.hint))
    return problems


def check_node(node: Node, graph: Graph) -> None:
    if node.domain not in ("", "ai.onnx", INTERNAL):  # INTERNAL: ops the fusion passes create
        raise Unsupported(f"operators of the domain '{node.domain}' are not supported",
                          hint="Export with standard ONNX ops only.")
    entry = lookup(node.op_type, graph.opset, node.domain)
    if entry is None:
        raise _missing(node, graph.opset)
    unknown = sorted(set(node.attrs) - set(entry.attributes))
    if unknown:
        raise Unsupported(f"unknown attribute(s) {unknown} (the lowering knows {sorted(entry.attributes)})")
    missing = sorted(k for k, v in entry.attributes.items() if v is inspect.Parameter.empty and k not in node.attrs)
    if missing:
        raise Unsupported(f"required attribute(s) {missing} are missing")
    if len(node.inputs) > entry.max_inputs:
        raise Unsupported(f"{len(node.inputs)} inputs given, the lowering takes at most {entry.max_inputs}")
    _check_values(node, graph, entry)


def _check_values(node: Node, graph: Graph, entry: Lowering) -> None:
    first = graph.value(node.inputs[0]) if node.inputs else None
    checked = ([first] if first is not None and not first.is_const else []) + [graph.value(o) for o in node.outputs if o]
    for value in checked:
        if value.dtype.name not in entry.dtypes:
            raise Unsupported(f"'{value.name}' is {value.dtype.name}; this lowering handles {', '.join(entry.dtypes)}")
        if value.shape is None:
            raise Unsupported(f"the shape of '{value.name}' is unknown after shape inference",
                              hint="Give static input shapes with --input-shape.")
        if DYNAMIC in value.shape[1:]:
            raise Unsupported(f"'{value.name}' has a dynamic non-batch dimension {list(value.shape)}",
                              hint="Fix the input shapes with --input-shape.")
        if DYNAMIC in value.shape[:1] and not entry.dynamic_batch:
            raise Unsupported("this lowering needs a static batch size",
                              hint="Fix the batch with --input-shape NAME=1x...")


def _missing(node: Node, opset: int) -> Unsupported:
    versions = versions_of(node.op_type, node.domain)
    if versions:
        return Unsupported(f"opset {opset} is older than the first version supported (opset {versions[0].since})",
                           hint="Re-export the model with a newer opset.")
    if node.op_type in DATA_DEPENDENT_SIZE:
        return Unsupported("its output size depends on the input's values, and a TFLite tensor's size is fixed when "
                           "the model is allocated", hint="Compute it outside the model, or make its input a constant "
                                                          "so it folds at compile time.")
    if node.op_type in COMPILE_TIME_ONLY:
        return Unsupported("it depends on run-time values, so it cannot be computed at compile time",
                           hint="Make shapes static with --input-shape so it folds to a constant.")
    return Unsupported("no TFLite lowering exists for this op",
                       hint="See `edgekit.converters.tflite.supported_ops()` for the supported ones.")


def raise_if_any(problems: list, source: str = "the model") -> None:
    if not problems:
        return
    err = UnsupportedModelError(
        f"{len(problems)} node(s) of {source} cannot be compiled to TFLite:\n" + "\n".join(p.line() for p in problems),
        hint="Nothing was written. Change or re-export these parts of the model, or run it with ONNX Runtime.")
    err.problems = [asdict(p) for p in problems]
    raise err

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
#: ops whose lowerings take a run-time size in any dimension (not only the batch): they emit no size computed from
#: the shape at compile time, or compute it at run time (SHAPE, GATHER, arithmetic, RESHAPE with a shape tensor).
#: Every other op refuses a dynamic non-batch dim, naming it; --input-shape then fixes the size.
DYNAMIC_OK = {
    # elementwise (TFLite broadcasts at run time)
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Erf", "Tanh", "Sigmoid",
    "Relu", "LeakyRelu", "Clip", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "Cast", "Identity",
    "Dropout", "Max", "Min",
    # data movement whose lowering maps axes, never sizes
    "Transpose", "Concat",
    # shape arithmetic lowered to run-time ops (lowerings/shape.py)
    "Shape", "Reshape", "Flatten", "Unsqueeze", "Squeeze", "Gather", "Slice", "ConstantOfShape", "Range",
    # dense, normalization, attention over a run-time token count
    "MatMul", "BatchMatMul", "Gemm", "Softmax", "LayerNormalization", "Gelu", "FastGelu",
    # convolutions and pooling over a run-time height and width (NHWC; padding fixed by the kernel, not the size)
    "Conv", "Relayout", "Resize", "Upsample",
    # reductions over constant axes: the kernels read the reduced sizes at run time (MEAN divides by them there)
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
    # int8: QUANTIZE / DEQUANTIZE are elementwise (per-axis scales run along a weight's static axis)
    "QuantizeLinear", "DequantizeLinear",
}
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
        if DYNAMIC in value.shape[1:] and not _dynamic_ok(node, graph):
            raise _static_needed(node, value, graph)
        if DYNAMIC in value.shape[:1] and not entry.dynamic_batch:
            if graph.dynamic_dims and not _dynamic_ok(node, graph):  # dim 0 may be a run-time length here
                raise _static_needed(node, value, graph)
            raise Unsupported("this lowering needs a static batch size",
                              hint="Fix the batch with --input-shape NAME=1x...")
    _check_dynamic_inputs(node, graph)


#: ops of DYNAMIC_OK that take run-time sizes only at this input rank (Conv: the 3-D form pads by sizes)
DYNAMIC_RANK = {"Conv": 4, "Resize": 4, "Upsample": 4}


def _dynamic_ok(node: Node, graph: Graph) -> bool:
    if node.op_type not in DYNAMIC_OK:
        return False
    first = graph.value(node.inputs[0]) if node.inputs else None
    if node.op_type == "Softmax" and graph.opset < 13 and first is not None and first.shape is not None:
        return node.attrs.get("axis", 1) % len(first.shape) == len(first.shape) - 1  # else flattened by sizes
    rank = DYNAMIC_RANK.get(node.op_type)
    return rank is None or (first is not None and first.shape is not None and len(first.shape) == rank)


def _check_dynamic_inputs(node: Node, graph: Graph) -> None:
    """Every run-time input, not only the first: a dynamic non-batch dim anywhere needs an op of DYNAMIC_OK."""
    if _dynamic_ok(node, graph):
        return
    for name in node.inputs:
        value = graph.value(name)
        if value is not None and not value.is_const and value.shape is not None and DYNAMIC in value.shape[1:]:
            raise _static_needed(node, value, graph)


def _static_needed(node: Node, value, graph: Graph) -> Unsupported:
    """A dynamic non-batch dim reaching an op whose lowering needs its size: name the op, the dim and the fix."""
    from edgekit.converters.tflite.importer import dynamic_dims_text, static_because
    dims = [i for i, d in enumerate(value.shape) if d == DYNAMIC and i > 0] or [0]
    why = static_because(node.op_type) or "its TFLite lowering computes sizes at compile time"
    named = dynamic_dims_text(graph.dynamic_dims)
    return Unsupported(f"'{value.name}' has a dynamic non-batch dimension {list(value.shape)} (dim "
                       f"{', '.join(map(str, dims))}), and {node.op_type} needs it static ({node.op_type}: {why})",
                       hint="Fix the input shapes with --input-shape NAME=DIMS, e.g. --input-shape x=1x16x8"
                            + (f" (dynamic input dims: {named})." if named else "."))


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

"""Every emitted TFLite op checked against what LiteRT's kernels accept, after lowering and before writing.

A violation would otherwise surface only when the model is loaded: a refused `allocate_tensors`, or worse, an abort of
the process embedding the model (int8 ADD/SUB without quantization parameters do that). Each one becomes a collected
Problem naming the ONNX node the op came from (TflOp.origin), reported with every other one as a single
UnsupportedModelError. What is checked:

- every tensor has a dtype a TFLite file can hold, every builtin exists, every option is a field of its options table;
- the input dtypes a builtin's kernel takes (KERNEL_DTYPES, from tensorflow/lite/kernels/*.cc), and equal operand
  types where the kernel demands them (SAME_TYPE);
- quantized kernels (QUANTIZED) have quantization parameters on their int8/uint8/int16 tensors;
- PAD/PADV2 keep the input's zero point (and PADV2's pad value has the output's), CONCATENATION and PACK of int8/int16
  take inputs of the output's scale and zero point (LiteRT does not rescale them);
- every scale of a quantized kernel's tensor is a positive finite float32, and int8 ADD/SUB can form their rescaling
  multipliers: LiteRT computes `(1 << 20) * output_scale` in float32 and aborts (QuantizeMultiplierSmallerThanOneExp)
  when that overflows or the multiplier `2 * max(input scales) / that` is not in (0, 1) — an output scale near
  float32's range (a `torch.finfo.min` attention-mask fill quantized as is) does that;
- TRANSPOSE takes an int32 permutation of its input's axes: LiteRT's kernel reads the perm as int32 whatever its type
  (an int64 perm transposes silently wrong without a delegate) and XNNPACK refuses the whole model at load ("failed to
  delegate TRANSPOSE node") on an int64, repeated or out-of-range perm.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite import quantization as qz
from edgekit.converters.tflite.check import Problem
from edgekit.converters.tflite.tfl import TflGraph, TflOp, options_table

FLOATS = {"float32"}
_INTS = {"int8", "uint8", "int16", "int32", "int64"}
_COMPARABLE = FLOATS | _INTS
#: builtin -> dtypes its kernel takes for its first input (only builtins whose constraints are listed here)
KERNEL_DTYPES = {
    "ADD": FLOATS | {"int8", "uint8", "int16", "int32", "int64"},
    "SUB": FLOATS | {"int8", "uint8", "int16", "int32", "int64"},
    "MUL": FLOATS | {"int8", "uint8", "int16", "int32", "int64"},
    "DIV": FLOATS | {"int8", "uint8", "int16", "int32"},
    "POW": FLOATS | {"int32"},
    "FLOOR_DIV": FLOATS | {"int8", "int16", "int32"},
    "FLOOR_MOD": FLOATS | {"int8", "int16", "int32", "int64"},
    "MAXIMUM": _COMPARABLE, "MINIMUM": _COMPARABLE,
    "EQUAL": _COMPARABLE | {"bool"}, "NOT_EQUAL": _COMPARABLE | {"bool"},
    "LESS": _COMPARABLE, "LESS_EQUAL": _COMPARABLE, "GREATER": _COMPARABLE, "GREATER_EQUAL": _COMPARABLE,
    "LOGICAL_AND": {"bool"}, "LOGICAL_OR": {"bool"}, "LOGICAL_NOT": {"bool"},
    "SELECT_V2": {"bool"},
    "NEG": FLOATS | {"int8", "int32", "int64"},
    "ABS": FLOATS | {"int8", "int16", "int32"},
    "BITWISE_XOR": {"int8", "uint8", "int16", "uint16", "int32", "uint32"},
    "RIGHT_SHIFT": {"int8", "uint8", "int16", "uint16", "int32", "uint32"},
    "SPLIT": FLOATS | {"int8", "uint8", "int16", "int32"}, "SPLIT_V": FLOATS | {"int8", "uint8", "int16", "int32"},
    "CONV_3D": FLOATS, "CONV_3D_TRANSPOSE": FLOATS,  # conv3d.cc / conv3d_transpose.cc: float32 only
    "CAST": {"float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "bool"},
}
#: builtins whose data is not their first input (SPLIT takes the axis first)
DATA_INPUT = {"SPLIT": 1}
#: builtins whose operands (inputs from the given position on) must share one dtype
SAME_TYPE = {**dict.fromkeys(("ADD", "SUB", "MUL", "DIV", "POW", "FLOOR_DIV", "FLOOR_MOD", "MAXIMUM", "MINIMUM",
                              "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                              "LOGICAL_OR", "BITWISE_XOR", "RIGHT_SHIFT", "SQUARED_DIFFERENCE", "CONCATENATION",
                              "PACK"), 0),
             "SELECT_V2": 1}
#: builtins whose int8/uint8/int16 kernels are quantized: those tensors need quantization parameters
QUANTIZED = {"ADD", "SUB", "MUL", "DIV", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED",
             "AVERAGE_POOL_2D", "LOGISTIC", "TANH", "SOFTMAX", "LOG_SOFTMAX", "MEAN", "QUANTIZE", "DEQUANTIZE",
             "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "BATCH_MATMUL", "HARD_SWISH", "LEAKY_RELU", "PRELU",
             "RSQRT", "SQUARED_DIFFERENCE"}
QUANTIZED_DTYPES = {"int8", "uint8", "int16"}
#: builtins whose int8/int16 kernels copy values: inputs must have the output's scale and zero point
EQUAL_SCALES = {"CONCATENATION", "PACK"}


def check(tgraph: TflGraph, graph=None) -> list:
    """Problems of every op of `tgraph`; `graph` (the IR the ops came from) names the ONNX op types."""
    op_types = {n.name: n.op_type for n in graph.nodes} if graph is not None else {}
    opset = graph.opset if graph is not None else 0
    problems = []
    for g, op in [(g, op) for g in (tgraph, *tgraph.subgraphs) for op in g.ops]:  # a WHILE's cond/body too
        reason = _first_violation(op, g)
        if reason:
            node = _node_of(op.origin, op_types)
            problems.append(Problem(node or op.origin or "(compiler)", op_types.get(node, op.code), opset,
                                    f"the emitted TFLite {op.code} {reason}",
                                    "LiteRT would refuse or abort on this model; nothing was written."))
    return problems


def _node_of(origin: str, op_types: dict) -> str:
    """The ONNX node an op came from: its origin, or the longest prefix of it that names a node ('n/requantize')."""
    name = origin
    while name and name not in op_types:
        name = name.rpartition("/")[0]
    return name or origin


def _first_violation(op: TflOp, g: TflGraph) -> str:
    from ai_edge_litert import schema_py_generated as fb
    from edgekit.converters.tflite.writer import TENSOR_TYPES
    if not hasattr(fb.BuiltinOperator, op.code):
        return "is not a builtin of this TFLite schema"
    missing = [n for n in op.inputs + op.outputs if n and n not in g.tensors]
    if missing:
        return f"refers to tensors that do not exist: {missing}"
    table = options_table(op.code)
    if table is None and op.options:
        return f"takes no options, got {sorted(op.options)}"
    if table is not None:
        fields = vars(getattr(fb, table + "T")())
        unknown = sorted(k for k in op.options if k not in fields)
        if unknown:
            return f"has no option(s) {unknown} ({table} has {sorted(fields)})"
    tensors = [g.tensors[n] for n in op.inputs + op.outputs if n]
    bad = sorted({t.dtype.name for t in tensors if np.dtype(t.dtype).name not in TENSOR_TYPES})
    if bad:
        return f"has tensors of dtype {', '.join(bad)}, which a TFLite file cannot hold"
    inputs = [g.tensors[n] if n else None for n in op.inputs]
    outputs = [g.tensors[n] for n in op.outputs]
    data = DATA_INPUT.get(op.code, 0)
    first = inputs[data] if len(inputs) > data else None
    allowed = KERNEL_DTYPES.get(op.code)
    if allowed is not None and first is not None and first.dtype.name not in allowed:
        return f"takes {', '.join(sorted(allowed))} in LiteRT, not {first.dtype.name} ('{first.name}')"
    if op.code == "CAST" and outputs[0].dtype.name not in allowed:
        return f"converts to {', '.join(sorted(allowed))} in LiteRT, not {outputs[0].dtype.name}"
    if op.code in SAME_TYPE:
        kinds = {t.dtype.name for t in inputs[SAME_TYPE[op.code]:] if t is not None}
        if len(kinds) > 1:
            return f"needs operands of one dtype in LiteRT, got {', '.join(sorted(kinds))}"
    if op.code in QUANTIZED:
        unquantized = [t.name for t in inputs + outputs if t is not None and t.dtype.name in QUANTIZED_DTYPES
                       and not t.quant and not (op.code == "QUANTIZE" and t is first)]
        if unquantized:
            return (f"runs a quantized kernel on {', '.join(sorted({g.tensors[n].dtype.name for n in unquantized}))}: "
                    f"{unquantized} carry no quantization parameters")
    if op.code == "TRANSPOSE":
        bad = _transpose_violation(inputs)
        if bad:
            return bad
    if op.code == "DEPTHWISE_CONV_2D":
        bad = _hybrid_depthwise_violation(inputs)
        if bad:
            return bad
    return _quantization_violation(op, inputs, outputs)


def _hybrid_depthwise_violation(inputs: list) -> str:
    """Float input, int8 filter: LiteRT's only kernel (EvalHybridPerChannel) reads one scale per output channel
    (axis 3) and checks just that the count matches the quantized dimension's size — a single scale on axis 0 of a
    [1, H, W, C] filter passes that check and is read past its end."""
    if len(inputs) < 2 or None in inputs[:2] or inputs[0].dtype.name != "float32" or inputs[1].dtype.name != "int8":
        return ""
    w = inputs[1]
    channels = w.shape[3] if len(w.shape) == 4 else None
    if not w.quant or w.quant["axis"] != 3 or len(w.quant["scale"]) != channels:
        count = len(w.quant["scale"]) if w.quant else 0
        return (f"runs LiteRT's hybrid kernel, which needs one filter scale per output channel on axis 3: "
                f"'{w.name}' has {count} scale(s) on axis {w.quant['axis'] if w.quant else None} for {channels} "
                f"channels (the kernel would read past the scales)")
    return ""


def _transpose_violation(inputs: list) -> str:
    if len(inputs) < 2 or None in inputs[:2]:
        return "needs its input and a perm"
    x, perm = inputs[:2]
    if perm.dtype.name != "int32":
        return f"reads its perm '{perm.name}' as int32 in LiteRT, not {perm.dtype.name}"
    if perm.data is None:
        return ""
    rank, axes = len(x.shape), [int(a) for a in np.asarray(perm.data).reshape(-1)]
    if sorted(a % rank if rank else a for a in axes) != list(range(rank)):
        return f"takes a permutation of its input's {rank} axes, not {axes} ('{perm.name}')"
    return ""


def _zero_point(t) -> int | None:
    return None if not t.quant else int(t.quant["zero_point"][0])


def _scale(t) -> float | None:
    return None if not t.quant else float(t.quant["scale"][0])


def _bad_scales(op: TflOp, tensors: list) -> str:
    if op.code not in QUANTIZED:
        return ""
    for t in tensors:
        if t is None or not t.quant or t.dtype.name not in QUANTIZED_DTYPES | {"int32"}:
            continue
        scales = np.asarray(t.quant["scale"], np.float64)
        if not (np.isfinite(scales.astype(np.float32)).all() and (scales > 0).all()):
            return f"has a scale LiteRT cannot use on '{t.name}' ({scales.min():.3g}..{scales.max():.3g}): scales " \
                   f"must be positive finite float32 numbers"
    return ""


def _add_multipliers(op: TflOp, inputs: list, out) -> str:
    if op.code not in ("ADD", "SUB") or out.dtype.name != "int8" or len(inputs) < 2 or None in inputs[:2]:
        return ""
    if not (inputs[0].quant and inputs[1].quant):
        return ""
    multiplier = qz.add_multiplier([_scale(inputs[0]), _scale(inputs[1])], _scale(out))
    if not 0.0 < multiplier < 1.0:
        return (f"cannot rescale in LiteRT: output scale {_scale(out):.3g} and input scales {_scale(inputs[0]):.3g}, "
                f"{_scale(inputs[1]):.3g} give a multiplier 2·max(input scale)/(2^{qz.ADD_LEFT_SHIFT}·output scale) = "
                f"{multiplier:.3g}, outside (0, 1) in float32 (LiteRT aborts preparing the kernel)"
                + ("; 2^20·output scale overflows float32" if multiplier == 0.0 else ""))
    return ""


def _quantization_violation(op: TflOp, inputs: list, outputs: list) -> str:
    out = outputs[0] if outputs else None
    bad = _bad_scales(op, inputs + outputs)
    if bad:
        return bad
    if out is None or out.dtype.name not in ("int8", "int16") or not out.quant:
        return ""
    bad = _add_multipliers(op, inputs, out)
    if bad:
        return bad
    if op.code in ("PAD", "PADV2") and inputs[0].quant and _zero_point(inputs[0]) != _zero_point(out):
        return f"keeps the zero point in LiteRT: input {_zero_point(inputs[0])} != output {_zero_point(out)}"
    if op.code == "PADV2" and len(inputs) > 2 and inputs[2] is not None:
        value = inputs[2]
        if value.dtype != out.dtype or (value.quant and _zero_point(value) != _zero_point(out)):
            return "pads with a value whose dtype or zero point differs from the output's"
    if op.code in EQUAL_SCALES:
        for t in inputs:
            if t is not None and (not t.quant or np.float32(_scale(t)) != np.float32(_scale(out))
                                  or _zero_point(t) != _zero_point(out)):
                return (f"copies int8 values without rescaling in LiteRT: input '{t.name}' (scale {_scale(t)}, zero "
                        f"point {_zero_point(t)}) differs from the output (scale {_scale(out)}, zero point "
                        f"{_zero_point(out)})")
    return ""

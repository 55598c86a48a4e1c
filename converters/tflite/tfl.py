"""The TFLite-level graph the lowerings emit into: tensors, builtin ops with schema-named options.

Options use the field names of the schema's object API (`strideW`, `fusedActivationFunction`, ...);
the writer turns them into `*OptionsT` objects, so nothing here hand-builds flatbuffer tables.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Value, permute

#: builtins whose options table breaks the naming rule of `options_table` (a table shared by a family)
SHARED_OPTIONS = {
    **dict.fromkeys(("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"), "Pool2DOptions"),
    **dict.fromkeys(("MEAN", "SUM", "REDUCE_PROD", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_ANY", "REDUCE_ALL"),
                    "ReducerOptions"),
    **dict.fromkeys(("MAXIMUM", "MINIMUM"), "MaximumMinimumOptions"),
    **dict.fromkeys(("RANDOM_STANDARD_NORMAL", "RANDOM_UNIFORM", "MULTINOMIAL"), "RandomOptions"),
    "L2_NORMALIZATION": "L2NormOptions", "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
}


@functools.lru_cache(maxsize=None)
def options_table(code: str) -> str | None:
    """The schema's options table of builtin `code`, by the schema's naming convention (CONV_2D -> Conv2DOptions,
    BATCH_MATMUL -> BatchMatMulOptions, compared without case and underscores); None for builtins without one."""
    if code in SHARED_OPTIONS:
        return SHARED_OPTIONS[code]
    from ai_edge_litert import schema_py_generated as fb
    tables = {name.lower(): name for name in vars(fb.BuiltinOptions) if name.endswith("Options")}
    return tables.get(code.replace("_", "").lower() + "options")


#: ops whose options carry a fusedActivationFunction the activation-fusion pass may set
#: (CONCATENATION has the option too, but LiteRT refuses to prepare it with an activation set: seen on RegNet)
FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
           "AVERAGE_POOL_2D", "MAX_POOL_2D"}


@dataclass
class TflTensor:
    name: str
    shape: list  # DYNAMIC (-1) marks a run-time dimension
    dtype: np.dtype
    data: np.ndarray | None = None
    quant: dict | None = None


@dataclass
class TflOp:
    code: str  # BuiltinOperator name, e.g. "CONV_2D"
    inputs: list  # tensor names; None for an omitted optional input
    outputs: list
    options: dict = field(default_factory=dict)
    origin: str = ""  # the ONNX node it came from
    module: str = ""  # that node's PyTorch module path, if known (names its output tensors in the file)


@dataclass
class TflGraph:
    tensors: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    #: further subgraphs (a WHILE's cond and body), index i + 1 in the file; only the main graph has them
    subgraphs: list = field(default_factory=list)
    declined: list = field(default_factory=list)  # rewrites a pass matched but did not make, with why (passes._declined)

    def consumers(self) -> dict:
        users: dict = {}
        for op in self.ops:
            for name in op.inputs:
                if name:
                    users.setdefault(name, []).append(op)
        return users

    def producers(self) -> dict:
        return {o: op for op in self.ops for o in op.outputs}

    def bypass(self, op: TflOp, source: str) -> bool:
        """Remove `op`, whose single output equals tensor `source`; False if that cannot be done safely."""
        out = op.outputs[0]
        if out in self.outputs:
            producer = self.producers().get(source)
            if producer is None or source in self.outputs or len(self.consumers().get(source, [])) != 1:
                return False
            producer.outputs = [out if o == source else o for o in producer.outputs]
            self.tensors[out].shape = self.tensors[source].shape
        else:
            for user in self.consumers().get(out, []):
                user.inputs = [source if i == out else i for i in user.inputs]
        self.ops.remove(op)
        return True

    def prune(self) -> None:
        """Drop ops nobody reads and tensors nothing refers to."""
        live = set(self.outputs)
        kept = []
        for op in reversed(self.ops):
            if any(o in live for o in op.outputs):
                kept.append(op)
                live.update(i for i in op.inputs if i)
        self.ops = kept[::-1]
        used = live | set(self.inputs) | {o for op in self.ops for o in op.outputs}
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def op_histogram(self) -> dict:
        hist: dict = {}
        for op in self.ops:
            hist[op.code] = hist.get(op.code, 0) + 1
        return hist


class Builder:
    """What a lowering sees: turn IR values into tensors, make constants and temporaries, emit ops.

    One Builder serves one node; `emit` refuses builtins the lowering did not declare.
    """

    def __init__(self, tgraph: TflGraph, aliases: dict, node, allowed: frozenset, opset: int,
                 root: TflGraph | None = None):
        self.g = tgraph
        self.root = tgraph if root is None else root  # the main graph, which holds every subgraph
        self.aliases = aliases  # IR value name -> tensor name, for ops lowered to nothing
        self.node = node
        self.allowed = allowed
        self.opset = opset
        self.emitted: list = []
        self.outputs: list = []  # IR Values of the node's outputs (None where omitted)

    # -- tensors
    def t(self, value: Value | None) -> str | None:
        """The tensor holding `value` in its physical layout (constants become buffers)."""
        if value is None:
            return None
        name = self.aliases.get(value.name, value.name)
        if name not in self.g.tensors:
            data = None
            if value.is_const:
                data = np.ascontiguousarray(np.transpose(value.const, value.perm) if value.perm else value.const)
            self.g.tensors[name] = TflTensor(name, list(value.phys_shape), np.dtype(value.dtype), data, value.quant)
        return name

    def out(self, value: Value) -> str:
        """Declare the tensor for an output value of this node."""
        return self.t(value)

    def const(self, array, dtype=None, hint: str = "const", quant: dict | None = None) -> str:
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        name = self._fresh(f"{self.node.name}/{hint}")
        self.g.tensors[name] = TflTensor(name, list(array.shape), array.dtype, array, quant)
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int32), hint=hint)

    def temp(self, shape, dtype=np.float32, hint: str = "tmp", quant: dict | None = None) -> str:
        name = self._fresh(f"{self.node.name}/{hint}")
        self.g.tensors[name] = TflTensor(name, list(shape), np.dtype(dtype), quant=quant)
        return name

    def like(self, value: Value, shape=None, hint: str = "tmp") -> str:
        """A temporary with the dtype and quantization of `value` (an int8 value's intermediates stay int8)."""
        return self.temp(value.phys_shape if shape is None else shape, value.dtype, hint, value.quant)

    def operand(self, value: Value, like: Value) -> str:
        """`value` ready to combine elementwise with `like`: constants are broadcast to its rank and permuted."""
        if not value.is_const:
            return self.t(value)
        data = value.const.reshape((1,) * (like.rank - value.const.ndim) + value.const.shape) \
            if value.const.ndim < like.rank else value.const
        if like.perm is not None and data.ndim == like.rank:
            data = np.transpose(data, like.perm)
        if value.quant is None and like.quant is not None and data.dtype.kind == "f":
            from edgekit.converters.tflite.quantization import quantize_tensor
            data, quant = quantize_tensor(data)  # a float constant meeting an int8 value joins it in int8
            return self.const(data, hint="operand", quant=quant)
        return self.const(data.astype(value.dtype), hint="operand", quant=value.quant)

    def alias(self, out: Value, source: str) -> None:
        """The node computes nothing: its output is the tensor `source`."""
        self.aliases[out.name] = source

    def shape_of(self, name: str) -> list:
        return list(self.g.tensors[name].shape)

    def subgraph(self) -> tuple[int, "Builder"]:
        """A new, empty subgraph (a WHILE's cond or body: set its `inputs`/`outputs`) and a Builder emitting into
        it under this node's declared builtins; returns its index in the file (the main graph is 0)."""
        sub = TflGraph()
        self.root.subgraphs.append(sub)
        return len(self.root.subgraphs), Builder(sub, {}, self.node, self.allowed, self.opset, self.root)

    # -- ops
    def emit(self, code: str, inputs, outputs, **options) -> TflOp:
        if code not in self.allowed:
            from edgekit.errors import InternalError
            raise InternalError(f"The lowering of {self.node.op_type} emitted {code}, which it does not declare "
                                f"(declared: {sorted(self.allowed)}).", hint="This is a bug in edgekit; please report it.")
        op = TflOp(code, list(inputs), list(outputs), options, origin=self.node.name, module=self.node.module)
        self.g.ops.append(op)
        self.emitted.append(op)
        return op

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.tensors:
            name, i = f"{base}_{i}", i + 1
        return name


def physical(axis: int, value: Value) -> int:
    """Where logical `axis` of `value` sits in memory."""
    axis = axis % value.rank
    return axis if value.perm is None else value.perm.index(axis)


def dims_for_reshape(shape) -> list:
    """A RESHAPE target: run-time dims become -1 (at most one is allowed)."""
    return [DYNAMIC if d == DYNAMIC else int(d) for d in shape]


__all__ = ["Builder", "TflGraph", "TflOp", "TflTensor", "options_table", "FUSABLE", "physical", "permute",
           "dims_for_reshape"]

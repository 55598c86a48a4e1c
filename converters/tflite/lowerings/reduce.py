"""Reductions in whatever layout the input has: the variadic Mean; the Reduce* family (axes as attribute in older
opsets, as an input from opset 13 (ReduceSum) / 18 (the rest)) as one builtin or a short composition; CumSum and
CumProd over run-time data.

A reduction is an elementwise step, a reducing builtin and an elementwise step (ReduceL2 = SQRT(SUM(x*x))).
With `noop_with_empty_axes=1` and no axes, ONNX (reference and Runtime alike) skips only the reducing builtin:
ReduceL1 is then ABS(x), ReduceSumSquare x*x, ReduceLogSum LOG(x).
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import normalize_perm
from edgekit.converters.tflite.lowerings._common import const_of, norm_axes
from edgekit.converters.tflite.registry import lowering
from edgekit.converters.tflite.tfl import physical

#: what the kernels of SUM / REDUCE_MAX / REDUCE_MIN take (int8: quantized; other integers are widened by the
#: integer-dtypes pass); MEAN and REDUCE_PROD keep to float (and int32 products)
REDUCE_DTYPES = ("float32", "int8", "int32", "int64")
FLT_MAX = float(np.finfo(np.float32).max)


def _axes_of(node, graph, rank):
    if "axes" in node.attrs:
        axes = node.attrs["axes"]
    elif len(node.inputs) > 1 and node.inputs[1]:
        value = graph.value(node.inputs[1])
        axes = value.const if value.is_const else None
    else:
        axes = None
    if axes is None or len(axes) == 0:
        return None if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return norm_axes(axes, rank)


def reduced_perm(node, perm, graph):
    """Layout of the output: with keepdims=0 the surviving axes keep their memory order."""
    if perm is None or node.attrs.get("keepdims", 1):
        return perm
    axes = _axes_of(node, graph, len(perm))
    if axes is None or any(graph.value(n) is not None and not graph.value(n).is_const for n in node.inputs[1:2]):
        return None
    return perm_without(perm, axes)


def perm_without(perm, axes):
    """The layout left when logical `axes` are dropped from a value laid out as `perm`: the rest keep their order."""
    kept = [a for a in perm if a not in axes]
    remap = {a: i for i, a in enumerate(sorted(kept))}
    return normalize_perm([remap[a] for a in kept])


def _physical_axes(x, axes, noop_with_empty_axes):
    """The memory axes to reduce, or None when the reduction is skipped (empty axes with noop_with_empty_axes)."""
    if axes is None or len(axes) == 0:
        if noop_with_empty_axes:
            return None
        axes = range(x.rank)
    return sorted(physical(a, x) for a in norm_axes(np.asarray(axes).reshape(-1), x.rank))


class _Steps:
    """Emit a chain of ops from `x` to the node's output: each step writes a temporary, the last one the output."""

    def __init__(self, b, x):
        self.b, self.y, self.src, self.shape = b, b.outputs[0], b.t(x), list(x.phys_shape)
        self.pending = None

    def __call__(self, code, *operands, shape=None, **options):
        self._flush()
        self.pending = (code, operands, self.shape if shape is None else list(shape), options)
        return self

    def _flush(self, last=False):
        if self.pending is None:
            return
        code, operands, shape, options = self.pending
        dest = self.b.out(self.y) if last else self.b.temp(shape, self.y.dtype, hint=code.lower())
        self.b.emit(code, [self.src, *operands], [dest], **options)
        self.src, self.shape, self.pending = dest, shape, None

    def reduce(self, code, axes, keepdims):
        shape = [1 if i in axes else d for i, d in enumerate(self.shape)]
        if not keepdims:
            shape = [d for i, d in enumerate(shape) if i not in axes]
        return self(code, self.b.ints(axes, "axes"), shape=shape, keepDims=bool(keepdims))

    def square(self):
        self._flush()
        return self("MUL", self.src)  # the pending MUL reads the current tensor twice

    def tensor(self) -> str:
        """The chain so far as a temporary, to be read by another chain."""
        self._flush()
        return self.src

    def done(self):
        if self.pending is None:
            return self.b.alias(self.y, self.src)
        self._flush(last=True)


def _builtin(code, bool_code=None):
    def reduce(b, x, axes, keepdims):
        steps = _Steps(b, x)
        if axes is not None:
            steps.reduce(bool_code if x.dtype == np.bool_ else code, axes, keepdims)
        steps.done()
    return reduce


def _l1(b, x, axes, keepdims):
    steps = _Steps(b, x)("ABS")
    if axes is not None:
        steps.reduce("SUM", axes, keepdims)
    steps.done()


def _sum_square(b, x, axes, keepdims):
    steps = _Steps(b, x).square()
    if axes is not None:
        steps.reduce("SUM", axes, keepdims)
    steps.done()


def _l2(b, x, axes, keepdims):
    if axes is None:  # sqrt(x * x) without the overflow of x * x
        return _Steps(b, x)("ABS").done()
    _Steps(b, x).square().reduce("SUM", axes, keepdims)("SQRT").done()


def _log_sum(b, x, axes, keepdims):
    steps = _Steps(b, x)
    if axes is not None:
        steps.reduce("SUM", axes, keepdims)
    steps("LOG").done()


def _log_sum_exp(b, x, axes, keepdims):
    """m + LOG(SUM(EXP(x - m))) with m the maximum clamped to finite values: exp never overflows, and an all -inf
    (or empty) slice gives -inf, a +inf entry +inf, as ONNX's reference does."""
    if axes is None:  # log(exp(x)) is x
        return _Steps(b, x).done()
    m = (_Steps(b, x).reduce("REDUCE_MAX", axes, True)
         ("MAXIMUM", b.const(np.full([1] * x.rank, -FLT_MAX, np.float32), hint="lowest"))
         ("MINIMUM", b.const(np.full([1] * x.rank, FLT_MAX, np.float32), hint="highest")).tensor())
    steps = _Steps(b, x)("SUB", m)("EXP").reduce("SUM", axes, True)("LOG")("ADD", m)
    if not keepdims:
        steps("SQUEEZE", shape=[d for i, d in enumerate(steps.shape) if i not in axes], squeezeDims=list(axes))
    steps.done()


def _register(op, reduce, emits, input_since, dtypes=("float32",)):
    @lowering(op, since=1, emits=emits, layout="any", out_perm=reduced_perm, dtypes=dtypes)
    def with_attribute(b, x, *, axes=None, keepdims=1):
        reduce(b, x, _physical_axes(x, axes, 0), keepdims)

    @lowering(op, since=input_since, emits=emits, layout="any", out_perm=reduced_perm, dtypes=dtypes)
    def with_input(b, x, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        reduce(b, x, _physical_axes(x, const_of(axes, "axes"), noop_with_empty_axes), keepdims)


_register("ReduceMean", _builtin("MEAN"), ("MEAN",), 18, ("float32", "int8"))
_register("ReduceSum", _builtin("SUM"), ("SUM",), 13, REDUCE_DTYPES)
# over booleans (opset 20) the maximum is "any", the minimum "all"
_register("ReduceMax", _builtin("REDUCE_MAX", "REDUCE_ANY"), ("REDUCE_MAX", "REDUCE_ANY"), 18,
          REDUCE_DTYPES + ("bool",))
_register("ReduceMin", _builtin("REDUCE_MIN", "REDUCE_ALL"), ("REDUCE_MIN", "REDUCE_ALL"), 18,
          REDUCE_DTYPES + ("bool",))
_register("ReduceProd", _builtin("REDUCE_PROD"), ("REDUCE_PROD",), 18, ("float32", "int32"))
_register("ReduceL1", _l1, ("ABS", "SUM"), 18)
_register("ReduceL2", _l2, ("MUL", "SUM", "SQRT", "ABS"), 18)
_register("ReduceSumSquare", _sum_square, ("MUL", "SUM"), 18)
_register("ReduceLogSum", _log_sum, ("SUM", "LOG"), 18)
_register("ReduceLogSumExp", _log_sum_exp,
          ("REDUCE_MAX", "MAXIMUM", "MINIMUM", "SUB", "EXP", "SUM", "LOG", "ADD", "SQUEEZE"), 18)


@lowering("Mean", since=6, emits=("ADD", "MUL"), layout="any")  # equal shapes only
@lowering("Mean", since=8, emits=("ADD", "MUL"), layout="any")
def mean(b, *xs):
    """The elementwise average of the (broadcast) inputs: an ADD chain, then one MUL by 1/n."""
    y = b.outputs[0]
    if len(xs) == 1:
        return b.alias(y, b.t(xs[0]))
    total = b.operand(xs[0], y)
    for i, x in enumerate(xs[1:], 1):
        partial = b.temp(y.phys_shape, hint=f"sum{i}")
        b.emit("ADD", [total, b.operand(x, y)], [partial])
        total = partial
    b.emit("MUL", [total, b.const(np.full([1] * y.rank, 1 / len(xs), np.float32), hint="inv_n")], [b.out(y)])


@lowering("CumSum", since=11, emits=("CUMSUM",), dtypes=("float32", "int32", "int64"))
def cumsum(b, x, axis, *, exclusive=0, reverse=0):
    """A running sum over run-time data (over constants, e.g. position ids, constant folding computes it)."""
    axis = int(np.asarray(const_of(axis, "axis")).reshape(-1)[0]) % x.rank
    b.emit("CUMSUM", [b.t(x), b.const(np.asarray(axis, np.int32), hint="axis")], [b.out(b.outputs[0])],
           exclusive=bool(exclusive), reverse=bool(reverse))


@lowering("CumProd", since=26, emits=("MUL", "SLICE", "PADV2", "REVERSE_V2"), layout="any",
          dtypes=("float32", "int32"))
def cumprod(b, x, axis, *, exclusive=0, reverse=0):
    """A running product without a TFLite builtin: a log-depth scan (Hillis-Steele), x *= x shifted by 1, 2, 4, ...
    along the axis with ones shifted in; ceil(log2(n)) SLICE + PADV2 + MUL steps."""
    p = physical(int(np.asarray(const_of(axis, "axis")).reshape(-1)[0]), x)
    n = x.phys_shape[p]
    one = b.const(np.ones([], x.dtype), hint="one")
    axis_t = b.ints([p], "axis")

    def shifted_by(k):
        """(begin, size) of the first n - k entries and the paddings that put k ones in front of them."""
        size = [-1] * x.rank
        size[p] = n - k
        pads = np.zeros((x.rank, 2), np.int32)
        pads[p, 0] = k
        return b.ints([0] * x.rank, "begin"), b.ints(size, "size"), b.const(pads, hint="pads")

    steps = _Steps(b, x)
    if reverse:
        steps("REVERSE_V2", axis_t)
    if exclusive:
        begin, size, pads = shifted_by(1)
        steps("SLICE", begin, size, shape=[n - 1 if i == p else d for i, d in enumerate(x.phys_shape)])
        steps("PADV2", pads, one, shape=x.phys_shape)
    k = 1
    while k < n:
        begin, size, pads = shifted_by(k)
        head = b.temp([n - k if i == p else d for i, d in enumerate(x.phys_shape)], x.dtype, hint=f"head{k}")
        shifted = b.temp(x.phys_shape, x.dtype, hint=f"shifted{k}")
        b.emit("SLICE", [steps.tensor(), begin, size], [head])
        b.emit("PADV2", [head, pads, one], [shifted])
        steps("MUL", shifted)
        k *= 2
    if reverse:
        steps("REVERSE_V2", axis_t)
    steps.done()

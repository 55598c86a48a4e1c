"""Shape and data-movement ops: Shape, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice,
Gather, Pad, and the no-ops Identity and Dropout.

Run-time sizes (a dynamic token count, image height or width, batch): sizes the folding pass could not make constant
are computed in the model — SHAPE, GATHER of its entries, the arithmetic ONNX wrote on them, then RESHAPE with that
shape tensor or STRIDED_SLICE with those bounds — so one model runs at every size LiteRT resizes it to. A target
with at most one run-time dim stays a constant with -1 there.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, normalize_perm
from edgekit.converters.tflite.lowerings._common import const_of, norm_axes
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape, physical


def _reshape_to_output(b, x, kept=None):
    """RESHAPE to the output's inferred shape, run-time dims as -1. With two or more run-time dims the target is
    computed in the model: `kept` lists, per output dim, the input dim it keeps (None for a constant size)."""
    y = b.outputs[0]
    if list(y.shape).count(DYNAMIC) <= 1:
        return b.emit("RESHAPE", [b.t(x), b.ints(dims_for_reshape(y.shape))], [b.out(y)])
    if kept is None:
        raise Unsupported(f"its output {list(y.shape)} has several run-time dims whose sizes the model does not "
                          f"give as a shape tensor", hint="Fix the input shapes with --input-shape NAME=DIMS.")
    b.emit("RESHAPE", [b.t(x), _gathered_shape(b, x, y.shape, kept)], [b.out(y)])


def _gathered_shape(b, x, dims, kept) -> str:
    """An int32 shape tensor: output dim i is x's run-time dim kept[i], or the constant dims[i]."""
    consts = [int(d) for d, k in zip(dims, kept) if k is None]
    full = b.temp([x.rank], np.int32, "shape")
    b.emit("SHAPE", [b.t(x)], [full], outType=_int32_type())
    table = full
    if consts:
        table = b.temp([x.rank + len(consts)], np.int32, "shape_table")
        b.emit("CONCATENATION", [full, b.ints(consts, "sizes")], [table], axis=0)
    index, c = [], iter(range(x.rank, x.rank + len(consts)))
    for k in kept:
        index.append(next(c) if k is None else physical(k, x))
    target = b.temp([len(kept)], np.int32, "target")
    b.emit("GATHER", [table, b.ints(index, "dims")], [target], axis=0)
    return target


def _int32_type():
    from edgekit.converters.tflite.writer import schema
    return schema().TensorType.INT32


def _as_int32(b, value) -> str:
    """A run-time integer vector as int32 (what RESHAPE and STRIDED_SLICE read)."""
    if value.dtype == np.int32:
        return b.t(value)
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    out = b.temp(value.shape, np.int32, f"{value.name}_int32")
    types = schema().TensorType
    b.emit("CAST", [b.t(value)], [out], inDataType=getattr(types, TENSOR_TYPES[value.dtype.name]),
           outDataType=types.INT32)
    return out


#: data movement works on int8 as on float (the requantize pass keeps input and output parameters equal)
MOVES = ("float32", "int8", "int32", "int64", "bool")
RESHAPE_EMITS = ("RESHAPE", "SHAPE", "CONCATENATION", "GATHER")


@lowering("Shape", since=1, emits=("SHAPE", "GATHER"), layout="any", dtypes=MOVES)
def shape_1(b, x):
    _shape(b, x, 0, None)


@lowering("Shape", since=15, emits=("SHAPE", "GATHER"), layout="any", dtypes=MOVES)
def shape_15(b, x, *, start=0, end=None):
    _shape(b, x, start, end)


def _shape(b, x, start, end):
    """SHAPE of the tensor as laid out, then GATHER of the logical dims start..end (the folding pass made the
    shape constant already when those dims are all static)."""
    y = b.outputs[0]
    axes = list(range(x.rank))[start:end]
    index = [physical(a, x) for a in axes]
    from edgekit.converters.tflite.writer import schema
    out_type = _int32_type() if y.dtype == np.int32 else schema().TensorType.INT64
    if index == list(range(x.rank)):
        return b.emit("SHAPE", [b.t(x)], [b.out(y)], outType=out_type)
    full = b.temp([x.rank], y.dtype, "shape")
    b.emit("SHAPE", [b.t(x)], [full], outType=out_type)
    b.emit("GATHER", [full, b.ints(index, "dims")], [b.out(y)], axis=0)


@lowering("ConstantOfShape", since=9, emits=("FILL", "CAST"), dtypes=("int32", "int64", "float32", "bool"))
def constant_of_shape(b, shape, *, value=None):
    """A shape computed at run time (the folding pass made constant shapes constant): FILL, in the output's dtype
    (int64 results compute as int32, like every run-time int64)."""
    y = b.outputs[0]
    if b.aliases.get(shape.name, shape.name) in b.g.inputs:
        raise Unsupported("its shape is a model input, which may hold a 0 (an empty tensor LiteRT cannot allocate); "
                          "only shapes computed from tensor sizes in the model are taken",
                          hint="Compute the tensor outside the model, or make its shape a constant.")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)[:1]
    b.emit("FILL", [_as_int32(b, shape), _scalar(b, fill, y.dtype, "value")], [b.out(y)])


def _scalar(b, value, dtype, hint: str) -> str:
    """A rank-0 constant (FILL's value, RANGE's bounds); b.const keeps arrays at least 1-D."""
    name = b.const(np.asarray(value, dtype).reshape(1), hint=hint)
    b.g.tensors[name].shape = []
    b.g.tensors[name].data = b.g.tensors[name].data.reshape(())
    return name


@lowering("Range", since=11, emits=("RANGE",), dtypes=("int32", "int64", "float32"))
def range_11(b, start, limit, delta):
    """A length computed at run time (position ids 0..T-1): RANGE, whose size is ceil((limit - start) / delta)
    as ONNX's; constant operands join as buffers in the output's dtype."""
    y = b.outputs[0]
    operands = [_scalar(b, v.const, y.dtype, "bound") if v.is_const else b.t(v) for v in (start, limit, delta)]
    b.emit("RANGE", operands, [b.out(y)])


@lowering("Flatten", emits=RESHAPE_EMITS, dtypes=MOVES)
def flatten(b, x, *, axis=1):
    _reshape_to_output(b, x)


@lowering("Reshape", since=5, emits=RESHAPE_EMITS + ("CAST",), dtypes=MOVES)
def reshape(b, x, shape, *, allowzero=0):
    """A target with several run-time dims is the model's own shape tensor: computed values are real sizes (a 0
    meaning "copy" would make LiteRT's element count check fail loudly, never reshape wrongly)."""
    y = b.outputs[0]
    if list(y.shape).count(DYNAMIC) <= 1 or shape.is_const:
        return _reshape_to_output(b, x)
    b.emit("RESHAPE", [b.t(x), _as_int32(b, shape)], [b.out(y)])


def _squeezed(x, y, axes):
    """Which input dim each output dim keeps when only size-1 dims are removed (Squeeze); None when which dims go
    depends on run-time sizes (no axes given)."""
    if axes is None and DYNAMIC in x.shape:
        return None
    axes = sorted(int(a) % x.rank for a in axes) if axes is not None else [i for i, d in enumerate(x.shape) if d == 1]
    return [i for i in range(x.rank) if i not in axes]


def _unsqueezed(x, y, axes):
    """Which input dim each output dim keeps (None: an inserted 1) for Unsqueeze."""
    axes = sorted(int(a) % y.rank for a in axes)
    src = iter(range(x.rank))
    return [None if i in axes else next(src) for i in range(y.rank)]


@lowering("Squeeze", since=1, emits=RESHAPE_EMITS, dtypes=MOVES)
def squeeze_1(b, x, *, axes=None):
    _reshape_to_output(b, x, _squeezed(x, b.outputs[0], axes))


@lowering("Squeeze", since=13, emits=RESHAPE_EMITS, dtypes=MOVES)
def squeeze_13(b, x, axes=None):
    known = axes is None or axes.is_const
    _reshape_to_output(b, x, _squeezed(x, b.outputs[0], None if axes is None else axes.const) if known else None)


@lowering("Unsqueeze", since=1, emits=RESHAPE_EMITS, dtypes=MOVES)
def unsqueeze_1(b, x, *, axes=None):
    _reshape_to_output(b, x, _unsqueezed(x, b.outputs[0], axes))


@lowering("Unsqueeze", since=13, emits=RESHAPE_EMITS, dtypes=MOVES)
def unsqueeze_13(b, x, axes):
    _reshape_to_output(b, x, _unsqueezed(x, b.outputs[0], axes.const) if axes.is_const else None)


def transposed_perm(node, perm, graph):
    """A Transpose only relabels axes: the output keeps the input's memory order under a new permutation."""
    rank = len(perm) if perm is not None else graph.value(node.inputs[0]).rank
    q = node.attrs.get("perm") or list(range(rank))[::-1]
    inverse = list(np.argsort(q))
    return normalize_perm([inverse[p] for p in (perm or range(rank))])


@lowering("Transpose", emits=(), layout="any", out_perm=transposed_perm, dtypes=MOVES)
def transpose(b, x, *, perm=None):
    b.alias(b.outputs[0], b.t(x))


@lowering("Identity", emits=(), layout="any", dtypes=("float32", "int64", "int32", "bool", "int8"))
def identity(b, x):
    b.alias(b.outputs[0], b.t(x))


@lowering("Dropout", since=7, emits=(), layout="any", dtypes=MOVES)
def dropout_7(b, x, *, ratio=0.5):
    _dropout(b, x)


@lowering("Dropout", since=12, emits=(), layout="any", dtypes=MOVES)
def dropout_12(b, x, ratio=None, training_mode=None, *, seed=None):
    if training_mode is not None and (not training_mode.is_const or bool(training_mode.const)):
        raise Unsupported("training_mode is not constant false", hint="Export the model in eval() mode.")
    _dropout(b, x)


def _dropout(b, x):
    if len(b.outputs) > 1 and b.outputs[1] is not None:
        raise Unsupported("its mask output is used")
    b.alias(b.outputs[0], b.t(x))


@lowering("Concat", since=4, emits=("CONCATENATION",), layout="any", dtypes=MOVES)
def concat(b, *xs, axis):
    y = b.outputs[0]
    b.emit("CONCATENATION", [b.operand(x, y) for x in xs], [b.out(y)], axis=physical(axis, y))


def _split(b, x, axis, sizes):
    outs = [o for o in b.outputs]
    if any(o is None for o in outs):
        raise Unsupported("some of its outputs are unused; name them all in the model")
    p_axis = physical(axis, x)
    sizes = [int(o.shape[axis % x.rank]) for o in outs] if sizes is None else [int(s) for s in sizes]
    if len(set(sizes)) == 1:
        b.emit("SPLIT", [b.ints(p_axis, "axis"), b.t(x)], [b.out(o) for o in outs], numSplits=len(outs))
    else:
        b.emit("SPLIT_V", [b.t(x), b.ints(sizes, "sizes"), b.ints(p_axis, "axis")], [b.out(o) for o in outs],
               numSplits=len(outs))


SPLIT_EMITS = ("SPLIT", "SPLIT_V")


@lowering("Split", since=2, emits=SPLIT_EMITS, layout="any", dtypes=MOVES)
def split_2(b, x, *, axis=0, split=None):
    _split(b, x, axis, split)


@lowering("Split", since=13, emits=SPLIT_EMITS, layout="any", dtypes=MOVES)
def split_13(b, x, split=None, *, axis=0):
    _split(b, x, axis, _split_sizes(split))


@lowering("Split", since=18, emits=SPLIT_EMITS, layout="any", dtypes=MOVES)
def split_18(b, x, split=None, *, axis=0, num_outputs=None):
    _split(b, x, axis, _split_sizes(split))


def _split_sizes(split):
    """A constant split input, else None: the sizes are then read from the outputs' inferred (static) shapes."""
    return split.const if split is not None and split.is_const else None


def _slice(b, x, starts, ends, axes, steps):
    y = b.outputs[0]
    shape = x.phys_shape
    axes = list(range(len(starts))) if axes is None else [int(a) % x.rank for a in axes]
    if any(int(x.shape[a]) < 0 for a in axes):
        return _slice_at_run_time(b, x, starts, ends, axes, steps)
    begin, end, stride = [0] * x.rank, list(shape), [1] * x.rank
    end_mask = sum(1 << p for p, d in enumerate(shape) if d < 0)  # an unsliced run-time dim is kept whole
    steps = [1] * len(axes) if steps is None else list(steps)
    for a, s, e, st in zip(axes, starts, ends, steps):
        p = physical(a, x)
        dim = int(x.shape[a])
        lo, hi, step = slice(int(s), int(e), int(st)).indices(dim)
        if len(range(lo, hi, step)) == 0:
            raise Unsupported(f"the slice of axis {a} is empty (starts={int(s)}, ends={int(e)}, steps={int(st)} on "
                              f"size {dim}); TFLite tensors cannot have a zero-size dimension")
        begin[p], end[p], stride[p] = lo, hi, step
        if step < 0 and hi < 0:
            end_mask |= 1 << p
    if all(s == 1 for s in stride):
        size = [-1 if d < 0 else e - bg for bg, e, d in zip(begin, end, shape)]
        b.emit("SLICE", [b.t(x), b.ints(begin, "begin"), b.ints(size, "size")], [b.out(y)])
    else:
        b.emit("STRIDED_SLICE", [b.t(x), b.ints(begin, "begin"), b.ints(end, "end"), b.ints(stride, "strides")],
               [b.out(y)], endMask=end_mask)


INT32_MAX, INT32_MIN = int(np.iinfo(np.int32).max), int(np.iinfo(np.int32).min)


def _slice_at_run_time(b, x, starts, ends, axes, steps):
    """A slice of a run-time dim, or with bounds computed at run time: STRIDED_SLICE with positive steps, whose
    begin/end clamp to the run-time size exactly as ONNX's do (negative bounds count from the end, out-of-range
    ones clamp to 0..size). Unsliced dims and unbounded ends use the begin/end masks."""
    steps = [1] * len(axes) if steps is None else [int(st) for st in np.asarray(steps).reshape(-1)]
    if any(st <= 0 for st in steps):
        raise Unsupported(f"steps={steps} on a run-time size (only positive steps clamp like ONNX in STRIDED_SLICE)",
                          hint="Fix the input shapes with --input-shape NAME=DIMS.")
    rank = x.rank
    stride = [1] * rank
    begin_mask = end_mask = 0
    sliced = {physical(a, x): i for i, a in enumerate(axes)}
    for p in range(rank):
        if p in sliced:
            stride[p] = steps[sliced[p]]
        else:
            begin_mask |= 1 << p
            end_mask |= 1 << p
    bounds = []
    for which, values, mask_bit in (("begin", starts, "begin"), ("end", ends, "end")):
        if isinstance(values, np.ndarray) or not hasattr(values, "is_const"):
            vals = [int(v) for v in np.asarray(values).reshape(-1)]
            full = [0] * rank
            for p, i in sliced.items():
                v = vals[i]
                if which == "end" and v >= INT32_MAX:
                    end_mask |= 1 << p
                elif which == "begin" and v <= INT32_MIN:
                    begin_mask |= 1 << p
                else:
                    full[p] = min(max(v, INT32_MIN), INT32_MAX)
            bounds.append(b.ints(full, which))
        else:  # computed at run time: its entries placed at the sliced positions, 0 elsewhere (masked)
            table = b.temp([len(axes) + 1], np.int32, f"{which}_table")
            b.emit("CONCATENATION", [_as_int32(b, values), b.ints([0], "zero")], [table], axis=0)
            full = b.temp([rank], np.int32, which)
            b.emit("GATHER", [table, b.ints([sliced.get(p, len(axes)) for p in range(rank)], f"{which}_dims")],
                   [full], axis=0)
            bounds.append(full)
    b.emit("STRIDED_SLICE", [b.t(x), bounds[0], bounds[1], b.ints(stride, "strides")], [b.out(b.outputs[0])],
           beginMask=begin_mask, endMask=end_mask)


SLICE_EMITS = ("SLICE", "STRIDED_SLICE", "CONCATENATION", "GATHER", "CAST")


@lowering("Slice", since=1, emits=SLICE_EMITS, layout="any", dtypes=MOVES)
def slice_1(b, x, *, axes=None, ends=None, starts=None):
    _slice(b, x, starts, ends, axes, None)


@lowering("Slice", since=10, emits=SLICE_EMITS, layout="any", dtypes=MOVES)
def slice_10(b, x, starts, ends, axes=None, steps=None):
    """Constant bounds as arrays; bounds computed at run time (a token count from Shape) stay Values."""
    axes, steps = const_of(axes, "axes"), const_of(steps, "steps")
    if starts.is_const and ends.is_const:
        return _slice(b, x, starts.const, ends.const, axes, steps)
    if axes is None and (starts.shape is None or DYNAMIC in starts.shape):
        raise Unsupported("run-time slice bounds of unknown length")
    axes = list(range(int(starts.shape[0]))) if axes is None else [int(a) % x.rank for a in axes]
    _slice_at_run_time(b, x, starts.const if starts.is_const else starts, ends.const if ends.is_const else ends,
                       axes, steps)


@lowering("Gather", emits=("GATHER", "RESHAPE", "CAST", "FLOOR_MOD", "SHAPE", "CONCATENATION"), dtypes=MOVES)
def gather(b, x, indices, *, axis=0):
    if not indices.is_const:
        return _gather_computed(b, x, indices, axis % x.rank)
    index = const_of(indices, "indices").astype(np.int64)
    dim = int(x.shape[axis % x.rank])
    if dim < 0 and np.any(index < 0):
        raise Unsupported("negative indices along a run-time dimension (which row they mean depends on its size)",
                          hint="Fix the input shapes with --input-shape NAME=DIMS.")
    if dim < 0:  # a row past the run-time size makes LiteRT's GATHER fail loudly, never read a wrong row
        dim = int(index.max()) + 1 if index.size else 1
    if np.any((index < -dim) | (index >= dim)):
        raise Unsupported(f"indices out of range for a dimension of size {dim}")
    index = np.where(index < 0, index + dim, index).astype(np.int32)
    y = b.outputs[0]
    if index.ndim:
        return b.emit("GATHER", [b.t(x), b.const(index, hint="indices")], [b.out(y)], axis=axis % x.rank)
    gathered = b.like(x, [1 if i == axis % x.rank else d for i, d in enumerate(x.shape)], hint="gathered")
    b.emit("GATHER", [b.t(x), b.const(index.reshape(1), hint="indices")], [gathered], axis=axis % x.rank)
    if list(y.shape).count(DYNAMIC) <= 1:
        return b.emit("RESHAPE", [gathered, b.ints(dims_for_reshape(y.shape))], [b.out(y)])
    kept = [i for i in range(x.rank) if i != axis % x.rank]
    b.emit("RESHAPE", [gathered, _gathered_shape(b, x, y.shape, kept)], [b.out(y)])


def _gather_computed(b, x, indices, axis):
    """Run-time indices (token ids): int32, wrapped like ONNX (-1 is the last row), then GATHER."""
    dim = int(x.shape[axis])
    if dim < 0:
        raise Unsupported("run-time indices along a run-time dimension (ONNX wraps negative ones by its size)",
                          hint="Fix the input shapes with --input-shape NAME=DIMS.")
    index = b.t(indices)
    if indices.dtype != np.int32:
        from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
        as_int32 = b.temp(indices.shape, np.int32, "indices_int32")
        types = schema().TensorType
        b.emit("CAST", [index], [as_int32], inDataType=getattr(types, TENSOR_TYPES[indices.dtype.name]),
               outDataType=types.INT32)
        index = as_int32
    wrapped = b.temp(indices.shape, np.int32, "indices_wrapped")
    b.emit("FLOOR_MOD", [index, b.ints([dim], "dim")], [wrapped])
    b.emit("GATHER", [b.t(x), wrapped], [b.out(b.outputs[0])], axis=axis)


def _pad(b, x, pads, value, mode, axes=None):
    y = b.outputs[0]
    pads = [int(p) for p in pads]
    axes = list(range(x.rank)) if axes is None else [int(a) % x.rank for a in axes]
    if mode in ("edge", "wrap"):
        return _pad_by_gathering(b, x, {a: (pads[i], pads[i + len(axes)]) for i, a in enumerate(axes)}, mode)
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads (cropping)", hint="Use Slice for cropping.")
    table = np.zeros([x.rank, 2], np.int32)
    for i, a in enumerate(axes):
        table[physical(a, x)] = [pads[i], pads[i + len(axes)]]
    paddings = b.const(table, hint="paddings")
    if mode == "constant":
        if value in (None, 0.0):
            return b.emit("PAD", [b.t(x), paddings], [b.out(y)])
        if y.quant is not None:  # int8: the pad value is written as is, so it takes the output's parameters
            from edgekit.converters.tflite.quantization import quantize
            pad_value = b.const(quantize(np.asarray(value, np.float32), y.quant), hint="value", quant=y.quant)
            return b.emit("PADV2", [b.t(x), paddings, pad_value], [b.out(y)])
        return b.emit("PADV2", [b.t(x), paddings, b.const(np.asarray(value, x.dtype), hint="value")], [b.out(y)])
    if mode == "reflect":
        return b.emit("MIRROR_PAD", [b.t(x), paddings], [b.out(y)], mode=0)
    raise Unsupported(f"mode={mode!r} is not an ONNX pad mode")


def _pad_by_gathering(b, x, pads: dict, mode: str):
    """edge and wrap have no TFLite builtin: each padded axis gathers its source rows, clamped (edge) or modulo
    the size (wrap); negative pads crop the same way."""
    y = b.outputs[0]
    src, shape = b.t(x), list(x.phys_shape)
    padded = [(a, lo, hi) for a, (lo, hi) in sorted(pads.items()) if lo or hi]
    if not padded:
        return b.alias(y, src)
    for i, (a, lo, hi) in enumerate(padded):
        n = int(x.shape[a])
        if n <= 0:
            raise Unsupported(f"mode={mode!r} padding along a dimension of size {n}")
        rows = np.arange(-lo, n + hi)
        if rows.size <= 0:
            raise Unsupported("the pads crop the input to nothing; TFLite tensors cannot be empty")
        rows = np.clip(rows, 0, n - 1) if mode == "edge" else rows % n
        p = physical(a, x)
        shape[p] = rows.size
        out = b.out(y) if i == len(padded) - 1 else b.like(x, list(shape), hint="padded")
        b.emit("GATHER", [src, b.ints(rows, "rows")], [out], axis=p)
        src = out


PAD_EMITS = ("PAD", "PADV2", "MIRROR_PAD", "GATHER")
#: PAD, MIRROR_PAD and GATHER move int32 as they move float
PAD_DTYPES = MOVES + ("int32",)


@lowering("Pad", since=2, emits=PAD_EMITS, layout="any", dtypes=PAD_DTYPES)
def pad_2(b, x, *, mode="constant", pads=None, value=0.0):
    _pad(b, x, pads, float(value), mode)


@lowering("Pad", since=11, emits=PAD_EMITS, layout="any", dtypes=PAD_DTYPES)
def pad_11(b, x, pads, constant_value=None, *, mode="constant"):
    value = const_of(constant_value, "constant_value")
    _pad(b, x, const_of(pads, "pads"), None if value is None else float(np.asarray(value).reshape(-1)[0]), mode)


@lowering("Pad", since=18, emits=PAD_EMITS, layout="any", dtypes=PAD_DTYPES)
def pad_18(b, x, pads, constant_value=None, axes=None, *, mode="constant"):
    value = const_of(constant_value, "constant_value")
    _pad(b, x, const_of(pads, "pads"), None if value is None else float(np.asarray(value).reshape(-1)[0]), mode,
         const_of(axes, "axes"))

"""Shape and data-movement ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice,
Gather, Pad, and the no-ops Identity and Dropout."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import normalize_perm
from edgekit.converters.tflite.lowerings._common import const_of, norm_axes
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape, physical


def _reshape_to_output(b, x):
    """RESHAPE to the output's inferred shape. A shape or axes input computed at run time is then never read: the
    checks already refused outputs whose non-batch dims are not static, so the target is known."""
    y = b.outputs[0]
    b.emit("RESHAPE", [b.t(x), b.ints(dims_for_reshape(y.shape))], [b.out(y)])


#: data movement works on int8 as on float (the requantize pass keeps input and output parameters equal)
MOVES = ("float32", "int8", "int32", "int64", "bool")


@lowering("Flatten", emits=("RESHAPE",), dtypes=MOVES)
def flatten(b, x, *, axis=1):
    _reshape_to_output(b, x)


@lowering("Reshape", since=5, emits=("RESHAPE",), dtypes=MOVES)
def reshape(b, x, shape, *, allowzero=0):
    _reshape_to_output(b, x)


@lowering("Squeeze", since=1, emits=("RESHAPE",), dtypes=MOVES)
def squeeze_1(b, x, *, axes=None):
    _reshape_to_output(b, x)


@lowering("Squeeze", since=13, emits=("RESHAPE",), dtypes=MOVES)
def squeeze_13(b, x, axes=None):
    _reshape_to_output(b, x)


@lowering("Unsqueeze", since=1, emits=("RESHAPE",), dtypes=MOVES)
def unsqueeze_1(b, x, *, axes=None):
    _reshape_to_output(b, x)


@lowering("Unsqueeze", since=13, emits=("RESHAPE",), dtypes=MOVES)
def unsqueeze_13(b, x, axes):
    _reshape_to_output(b, x)


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
    begin, end, stride = [0] * x.rank, list(shape), [1] * x.rank
    end_mask = 0
    axes = list(range(len(starts))) if axes is None else [int(a) % x.rank for a in axes]
    steps = [1] * len(axes) if steps is None else list(steps)
    for a, s, e, st in zip(axes, starts, ends, steps):
        p = physical(a, x)
        dim = int(x.shape[a])
        if dim < 0:
            raise Unsupported("slicing the dynamic batch dimension")
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


SLICE_EMITS = ("SLICE", "STRIDED_SLICE")


@lowering("Slice", since=1, emits=SLICE_EMITS, layout="any", dtypes=MOVES)
def slice_1(b, x, *, axes=None, ends=None, starts=None):
    _slice(b, x, starts, ends, axes, None)


@lowering("Slice", since=10, emits=SLICE_EMITS, layout="any", dtypes=MOVES)
def slice_10(b, x, starts, ends, axes=None, steps=None):
    _slice(b, x, const_of(starts, "starts"), const_of(ends, "ends"), const_of(axes, "axes"), const_of(steps, "steps"))


@lowering("Gather", emits=("GATHER", "RESHAPE", "CAST", "FLOOR_MOD"), dtypes=MOVES)
def gather(b, x, indices, *, axis=0):
    if not indices.is_const:
        return _gather_computed(b, x, indices, axis % x.rank)
    index = const_of(indices, "indices").astype(np.int64)
    dim = int(x.shape[axis % x.rank])
    if dim < 0:
        raise Unsupported("gathering along the dynamic batch dimension")
    if np.any((index < -dim) | (index >= dim)):
        raise Unsupported(f"indices out of range for a dimension of size {dim}")
    index = np.where(index < 0, index + dim, index).astype(np.int32)
    y = b.outputs[0]
    if index.ndim:
        return b.emit("GATHER", [b.t(x), b.const(index, hint="indices")], [b.out(y)], axis=axis % x.rank)
    gathered = b.like(x, [1 if i == axis % x.rank else d for i, d in enumerate(x.shape)], hint="gathered")
    b.emit("GATHER", [b.t(x), b.const(index.reshape(1), hint="indices")], [gathered], axis=axis % x.rank)
    b.emit("RESHAPE", [gathered, b.ints(y.shape)], [b.out(y)])


def _gather_computed(b, x, indices, axis):
    """Run-time indices (token ids): int32, wrapped like ONNX (-1 is the last row), then GATHER."""
    dim = int(x.shape[axis])
    if dim < 0:
        raise Unsupported("gathering along the dynamic batch dimension")
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

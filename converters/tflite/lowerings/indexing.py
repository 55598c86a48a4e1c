"""Indexing, gather/scatter and rearranging ops: GatherElements, GatherND, ScatterND, ScatterElements (and the old
Scatter), TopK, OneHot, Trilu, DepthToSpace, SpaceToDepth, ReverseSequence, EyeLike and Compress.

Element-wise gathers and scatters become GATHER_ND / SCATTER_ND over full coordinates: the coordinates of every
axis but the indexed one are a constant grid, the indexed one is the (wrapped) index. SCATTER_ND writes into zeros
and sums duplicates, so a scatter into `data` selects the scattered values where a constant (or scattered) mask is
set; reductions that a sum cannot express (mul, max, min) need constant, duplicate-free indices.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of, require_rank
from edgekit.converters.tflite.registry import Unsupported, lowering

#: data the gathers, scatters and selections move as they are (LiteRT's kernels take these natively)
MOVED = ("float32", "int32", "int64", "int8", "bool")


# -- helpers

def _cast(b, name: str, shape, src_dtype, dst_dtype, hint: str = "cast") -> str:
    from edgekit.converters.tflite.writer import TENSOR_TYPES, schema
    out = b.temp(shape, dst_dtype, hint)
    types = schema().TensorType
    b.emit("CAST", [name], [out], inDataType=getattr(types, TENSOR_TYPES[np.dtype(src_dtype).name]),
           outDataType=getattr(types, TENSOR_TYPES[np.dtype(dst_dtype).name]))
    return out


def _int32(b, value) -> str:
    """`value`'s tensor as int32 (index inputs arrive as int64)."""
    if value.dtype == np.int32:
        return b.t(value)
    return _cast(b, b.t(value), value.shape, value.dtype, np.int32, "int32")


def _wrapped_const(index, dims, what: str) -> np.ndarray:
    """Constant indices with negatives wrapped (ONNX counts -1 from the end); out of range is an error."""
    index = np.asarray(index, np.int64)
    dims = np.asarray(dims, np.int64)
    if np.any((index < -dims) | (index >= dims)):
        raise Unsupported(f"{what} out of range for dimensions {dims.tolist()}")
    return np.where(index < 0, index + dims, index).astype(np.int32)


def _wrapped(b, value, dims) -> str:
    """Run-time indices as int32, wrapped like ONNX (FLOOR_MOD by the indexed dimensions, broadcast)."""
    out = b.temp(value.shape, np.int32, "wrapped")
    b.emit("FLOOR_MOD", [_int32(b, value), b.ints(dims, "dims")], [out])
    return out


def _static(x, what: str = "data"):
    if any(d < 0 for d in x.shape):
        raise Unsupported(f"its {what} has a dynamic dimension {list(x.shape)}; the index grids need static sizes",
                          hint="Fix the batch with --input-shape.")


def _nonempty(x, what: str = "input"):
    if x.shape is not None and 0 in x.shape:
        raise Unsupported(f"its {what} is empty {list(x.shape)}; TFLite tensors cannot have a zero-size dimension")


def _element_coords(b, x, indices, axis: int):
    """Full coordinates [*indices.shape, rank] that address x[.., indices[i], ..] along `axis` element-wise."""
    _static(x)
    shape = list(indices.shape)
    grids = np.indices(shape, dtype=np.int32)  # [rank, *shape]
    if indices.is_const:
        grids[axis] = _wrapped_const(indices.const, x.shape[axis], "indices")
        return b.const(np.moveaxis(grids, 0, -1), hint="coords")
    column = b.temp(shape + [1], np.int32, "axis_coords")
    b.emit("RESHAPE", [_wrapped(b, indices, [x.shape[axis]]), b.ints(shape + [1])], [column])
    if x.rank == 1:
        return column
    parts = [column if a == axis else b.const(grids[a][..., None], hint=f"grid{a}") for a in range(x.rank)]
    coords = b.temp(shape + [x.rank], np.int32, "coords")
    b.emit("CONCATENATION", parts, [coords], axis=len(shape))
    return coords


def _nd_coords(b, x, indices, batch_dims: int):
    """GatherND/ScatterND indices as full GATHER_ND coordinates: batch grids prepended, negatives wrapped."""
    k = int(indices.shape[-1])
    _static(x)
    _static(indices, "indices")
    dims = list(x.shape[batch_dims:batch_dims + k])
    lead = list(indices.shape[:-1])
    if indices.is_const:
        index = _wrapped_const(indices.const, dims, "indices")
        if batch_dims:
            grids = np.indices(lead[:batch_dims], dtype=np.int32)
            grids = np.broadcast_to(np.moveaxis(grids, 0, -1).reshape(lead[:batch_dims] + [1] * (len(lead) - batch_dims)
                                                                      + [batch_dims]), lead + [batch_dims])
            index = np.concatenate([grids, index], axis=-1)
        return b.const(index, hint="coords")
    wrapped = _wrapped(b, indices, dims)
    if not batch_dims:
        return wrapped
    grids = np.indices(lead, dtype=np.int32)[:batch_dims]
    coords = b.temp(lead + [batch_dims + k], np.int32, "coords")
    b.emit("CONCATENATION", [b.const(np.moveaxis(grids, 0, -1), hint="batch_grid"), wrapped], [coords], axis=len(lead))
    return coords


# -- gathers

GATHER_EMITS = ("GATHER_ND", "CAST", "FLOOR_MOD", "RESHAPE", "CONCATENATION")


@lowering("GatherElements", since=11, emits=GATHER_EMITS, dtypes=MOVED)
def gather_elements(b, x, indices, *, axis=0):
    coords = _element_coords(b, x, indices, axis % x.rank)
    b.emit("GATHER_ND", [b.t(x), coords], [b.out(b.outputs[0])])


def _gather_nd(b, x, indices, batch_dims):
    coords = _nd_coords(b, x, indices, batch_dims)
    b.emit("GATHER_ND", [b.t(x), coords], [b.out(b.outputs[0])])


@lowering("GatherND", since=11, emits=GATHER_EMITS, dtypes=MOVED)
def gather_nd_11(b, x, indices):
    _gather_nd(b, x, indices, 0)


@lowering("GatherND", since=12, emits=GATHER_EMITS, dtypes=MOVED)
def gather_nd_12(b, x, indices, *, batch_dims=0):
    _gather_nd(b, x, indices, batch_dims)


# -- scatters

SCATTER_EMITS = ("SCATTER_ND", "SELECT_V2", "ADD", "MUL", "MAXIMUM", "MINIMUM", "GREATER", "CAST", "FLOOR_MOD",
                 "RESHAPE", "CONCATENATION", "GATHER")
COMBINE = {"mul": "MUL", "max": "MAXIMUM", "min": "MINIMUM"}


def _scatter(b, data, coords: str, const_coords, updates, reduction: str):
    """data with `updates` written at full coordinates `coords` ([..., k] into data's leading k axes)."""
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise Unsupported(f"reduction={reduction!r} is not an ONNX value")
    _nonempty(data)
    y = b.outputs[0]
    shape = b.ints(list(data.shape), "shape")
    if reduction == "add":  # SCATTER_ND sums the updates meeting at one position, as reduction 'add' does
        scattered = b.like(data, hint="scattered")
        b.emit("SCATTER_ND", [coords, b.t(updates), shape], [scattered])
        return b.emit("ADD", [b.t(data), scattered], [b.out(y)])
    if const_coords is None:
        if reduction in COMBINE:
            raise Unsupported(f"run-time indices with reduction={reduction!r}: TFLite's SCATTER_ND sums the updates "
                              "that meet at one position, and duplicates cannot be ruled out at compile time",
                              hint="Make the indices constant, or use reduction 'none' or 'add'.")
        scattered = b.like(data, hint="scattered")
        b.emit("SCATTER_ND", [coords, b.t(updates), shape], [scattered])
        # which positions the updates reach: scatter ones, compare with zero
        ones = b.const(np.ones(updates.shape, np.float32), hint="ones")
        counts = b.temp(data.shape, np.float32, "counts")
        b.emit("SCATTER_ND", [coords, ones, shape], [counts])
        mask = b.temp(data.shape, np.bool_, "mask")
        b.emit("GREATER", [counts, b.const(np.float32(0), hint="zero")], [mask])
        return b.emit("SELECT_V2", [mask, scattered, b.t(data)], [b.out(y)])
    rows = const_coords.reshape(-1, const_coords.shape[-1])
    rounds = _rounds(rows, reduction)
    flat_updates = None
    current = b.t(data)
    for i, ids in enumerate(rounds):
        if len(ids) == len(rows):  # every row, in order
            round_coords, round_updates = coords, b.t(updates)
        else:
            if flat_updates is None:
                flat_updates = b.like(updates, [len(rows)] + list(data.shape[rows.shape[1]:]), "flat_updates")
                b.emit("RESHAPE", [b.t(updates), b.ints([len(rows)] + list(data.shape[rows.shape[1]:]))],
                       [flat_updates])
            round_coords = b.const(rows[ids], hint="coords")
            round_updates = b.like(updates, [len(ids)] + list(data.shape[rows.shape[1]:]), "round_updates")
            b.emit("GATHER", [flat_updates, b.ints(ids, "rows")], [round_updates], axis=0)
        scattered = b.like(data, hint="scattered")
        b.emit("SCATTER_ND", [round_coords, round_updates, shape], [scattered])
        if reduction in COMBINE:
            combined = b.like(data, hint="combined")
            b.emit(COMBINE[reduction], [current, scattered], [combined])
            scattered = combined
        covered = np.zeros(data.shape, bool)
        covered[tuple(rows[ids].T)] = True
        result = b.out(y) if i == len(rounds) - 1 else b.like(data, hint="partial")
        b.emit("SELECT_V2", [b.const(covered, hint="mask"), scattered, current], [result])
        current = result


def _rounds(rows: np.ndarray, reduction: str) -> list:
    """Row ids to scatter together, each round free of duplicates: 'none' keeps the last write to each position
    (ONNX's reference order); mul/max/min apply the k-th update of every position in round k."""
    seen: dict = {}
    occurrence = []
    for r in map(tuple, rows.tolist()):
        occurrence.append(seen.get(r, 0))
        seen[r] = occurrence[-1] + 1
    occurrence = np.asarray(occurrence)
    if reduction == "none":
        last = [i for i, r in enumerate(map(tuple, rows.tolist())) if occurrence[i] == seen[r] - 1]
        return [np.asarray(last)]
    return [np.flatnonzero(occurrence == k) for k in range(int(occurrence.max()) + 1)]


@lowering("ScatterND", since=11, emits=SCATTER_EMITS, dtypes=MOVED)
def scatter_nd_11(b, data, indices, updates):
    _scatter_nd(b, data, indices, updates, "none")


@lowering("ScatterND", since=16, emits=SCATTER_EMITS, dtypes=MOVED)
def scatter_nd_16(b, data, indices, updates, *, reduction="none"):
    _scatter_nd(b, data, indices, updates, reduction)


def _scatter_nd(b, data, indices, updates, reduction):
    coords = _nd_coords(b, data, indices, 0)
    const = _wrapped_const(indices.const, data.shape[:indices.shape[-1]], "indices") if indices.is_const else None
    _scatter(b, data, coords, const, updates, reduction)


def _scatter_elements(b, data, indices, updates, axis, reduction):
    axis = axis % data.rank
    coords = _element_coords(b, data, indices, axis)
    const = None
    if indices.is_const:
        const = np.moveaxis(np.indices(indices.shape, dtype=np.int32), 0, -1).copy()
        const[..., axis] = _wrapped_const(indices.const, data.shape[axis], "indices")
    _scatter(b, data, coords, const, updates, reduction)


@lowering("Scatter", since=9, emits=SCATTER_EMITS, dtypes=MOVED)
def scatter(b, data, indices, updates, *, axis=0):
    _scatter_elements(b, data, indices, updates, axis, "none")


@lowering("ScatterElements", since=11, emits=SCATTER_EMITS, dtypes=MOVED)
def scatter_elements_11(b, data, indices, updates, *, axis=0):
    _scatter_elements(b, data, indices, updates, axis, "none")


@lowering("ScatterElements", since=16, emits=SCATTER_EMITS, dtypes=MOVED)
def scatter_elements_16(b, data, indices, updates, *, axis=0, reduction="none"):
    _scatter_elements(b, data, indices, updates, axis, reduction)


# -- TopK

TOPK_EMITS = ("TOPK_V2", "NEG", "TRANSPOSE", "CAST")


def _topk(b, x, k, axis, largest):
    """TOPK_V2 takes the largest k along the last axis, sorted, ties to the lower index (as ONNX); the smallest
    are the largest of -x; another axis is moved last and back."""
    values, indices = b.outputs
    axis = axis % x.rank
    k = int(np.asarray(k).reshape(-1)[0])
    if k < 1:
        raise Unsupported(f"k={k}: a TopK of nothing is an empty tensor, which TFLite cannot hold")
    perm = list(range(x.rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    moved = [x.shape[p] for p in perm]
    src = b.t(x)
    if axis != x.rank - 1:
        src_moved = b.like(x, moved, "moved")
        b.emit("TRANSPOSE", [src, b.ints(perm, "perm")], [src_moved])
        src = src_moved
    if not largest:
        negated = b.like(x, moved, "negated")
        b.emit("NEG", [src], [negated])
        src = negated
    out_shape = moved[:-1] + [k]
    top_values = b.like(x, out_shape, "values")
    top_indices = b.temp(out_shape, np.int32, "indices")
    b.emit("TOPK_V2", [src, b.ints(k, "k")], [top_values, top_indices])
    if not largest:
        negated = b.like(x, out_shape, "values_negated")
        b.emit("NEG", [top_values], [negated])
        top_values = negated
    for result, out, dtype in ((top_values, values, x.dtype), (top_indices, indices, np.int32)):
        if out is None:
            continue
        if axis != x.rank - 1:
            back = b.temp(out.shape, dtype, "back")
            b.emit("TRANSPOSE", [result, b.ints(perm, "perm")], [back])
            result = back
        if out.dtype != dtype:
            result = _cast(b, result, out.shape, dtype, out.dtype, "indices_cast")
        b.alias(out, result)


@lowering("TopK", since=1, emits=TOPK_EMITS, dtypes=("float32", "int64", "int32"))
def topk_1(b, x, *, axis=-1, k):
    _topk(b, x, k, axis, 1)


@lowering("TopK", since=10, emits=TOPK_EMITS, dtypes=("float32", "int64", "int32"))
def topk_10(b, x, k, *, axis=-1):
    _topk(b, x, const_of(k, "K"), axis, 1)


@lowering("TopK", since=11, emits=TOPK_EMITS, dtypes=("float32", "int64", "int32"))
def topk_11(b, x, k, *, axis=-1, largest=1, sorted=1):  # noqa: A002 - the spec's name; TOPK_V2 always sorts
    _topk(b, x, const_of(k, "K"), axis, largest)


# -- OneHot, Trilu, EyeLike

@lowering("OneHot", since=9, emits=("ONE_HOT", "CAST", "LESS", "ADD", "SELECT_V2"),
          dtypes=("float32", "int32", "int64", "bool"))
def one_hot(b, indices, depth, values, *, axis=-1):
    """ONE_HOT is off for any index outside [0, depth); ONNX first wraps [-depth, 0) to the end."""
    y = b.outputs[0]
    depth = int(np.asarray(const_of(depth, "depth")).reshape(-1)[0])
    off, on = np.asarray(const_of(values, "values")).reshape(-1)[:2]
    if indices.dtype.kind == "f":  # ONNX casts float indices to integers (truncation)
        index = _cast(b, b.t(indices), indices.shape, indices.dtype, np.int32, "indices")
    else:
        index = _int32(b, indices)
    negative = b.temp(indices.shape, np.bool_, "negative")
    b.emit("LESS", [index, b.ints(0, "zero")], [negative])
    shifted = b.temp(indices.shape, np.int32, "shifted")
    b.emit("ADD", [index, b.ints(depth, "depth")], [shifted])
    wrapped = b.temp(indices.shape, np.int32, "wrapped")
    b.emit("SELECT_V2", [negative, shifted, index], [wrapped])
    b.emit("ONE_HOT", [wrapped, b.ints(depth, "depth"), b.const(np.asarray(on, y.dtype), hint="on"),
                       b.const(np.asarray(off, y.dtype), hint="off")], [b.out(y)], axis=axis % y.rank)


@lowering("Trilu", since=14, emits=("SELECT_V2",), dtypes=MOVED + ("bool",))
def trilu(b, x, k=None, *, upper=1):
    """A constant triangle mask selects x or zero (SELECT_V2, so inf and NaN outside the triangle become 0)."""
    _nonempty(x)
    k = 0 if k is None else int(np.asarray(const_of(k, "k")).reshape(-1)[0])
    rows, cols = int(x.shape[-2]), int(x.shape[-1])
    ones = np.ones((rows, cols), bool)
    mask = np.triu(ones, k) if upper else np.tril(ones, k)
    y = b.outputs[0]
    b.emit("SELECT_V2", [b.const(mask, hint="mask"), b.t(x), b.const(np.zeros((), x.dtype), hint="zero")],
           [b.out(y)])


@lowering("EyeLike", since=9, emits=(), dtypes=MOVED + ("bool",))
def eye_like(b, x, *, dtype=None, k=0):
    """Depends only on x's (static) shape: the output is a constant."""
    y = b.outputs[0]
    _static(x, "input")
    b.alias(y, b.const(np.eye(int(x.shape[0]), int(x.shape[1]), int(k), dtype=y.dtype), hint="eye"))


# -- rearranging blocks and sequences

@lowering("DepthToSpace", since=1, emits=("DEPTH_TO_SPACE",), layout="nhwc", dtypes=("float32", "int8"))
def depth_to_space_1(b, x, *, blocksize):
    require_rank(x, 4, "4-D input")
    b.emit("DEPTH_TO_SPACE", [b.t(x)], [b.out(b.outputs[0])], blockSize=blocksize)


@lowering("DepthToSpace", since=11, emits=("DEPTH_TO_SPACE", "GATHER"), layout="nhwc", dtypes=("float32", "int8"))
def depth_to_space_11(b, x, *, blocksize, mode="DCR"):
    """DEPTH_TO_SPACE reads channels depth-column-row (DCR); CRD first reorders the channels to DCR."""
    require_rank(x, 4, "4-D input")
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"mode={mode!r} is not an ONNX value")
    src = b.t(x)
    if mode == "CRD":
        channels = int(x.shape[1])
        out_channels = channels // (blocksize * blocksize)
        d = np.arange(channels)
        order = (d % out_channels) * blocksize * blocksize + d // out_channels
        reordered = b.like(x, hint="dcr")
        b.emit("GATHER", [src, b.ints(order, "order")], [reordered], axis=3)
        src = reordered
    b.emit("DEPTH_TO_SPACE", [src], [b.out(b.outputs[0])], blockSize=blocksize)


@lowering("SpaceToDepth", since=1, emits=("SPACE_TO_DEPTH",), layout="nhwc", dtypes=("float32", "int8"))
def space_to_depth_1(b, x, *, blocksize):
    require_rank(x, 4, "4-D input")
    b.emit("SPACE_TO_DEPTH", [b.t(x)], [b.out(b.outputs[0])], blockSize=blocksize)


@lowering("SpaceToDepth", since=28, emits=("SPACE_TO_DEPTH", "GATHER"), layout="nhwc", dtypes=("float32", "int8"))
def space_to_depth_28(b, x, *, blocksize, mode="DCR"):
    """SPACE_TO_DEPTH writes channels depth-column-row (DCR); CRD then reorders them."""
    require_rank(x, 4, "4-D input")
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"mode={mode!r} is not an ONNX value")
    y = b.outputs[0]
    if mode == "DCR":
        return b.emit("SPACE_TO_DEPTH", [b.t(x)], [b.out(y)], blockSize=blocksize)
    blocks = blocksize * blocksize
    dcr = b.like(y, hint="dcr")
    b.emit("SPACE_TO_DEPTH", [b.t(x)], [dcr], blockSize=blocksize)
    e = np.arange(int(y.shape[1]))
    b.emit("GATHER", [dcr, b.ints((e % blocks) * int(x.shape[1]) + e // blocks, "order")], [b.out(y)], axis=3)


@lowering("ReverseSequence", since=10, emits=("REVERSE_SEQUENCE", "CAST"), dtypes=MOVED)
def reverse_sequence(b, x, sequence_lens, *, batch_axis=1, time_axis=0):
    if sequence_lens.is_const:
        lengths = np.asarray(sequence_lens.const)
        if np.any((lengths < 0) | (lengths > x.shape[time_axis])):
            raise Unsupported(f"sequence_lens {lengths.tolist()} outside [0, {x.shape[time_axis]}]")
        lengths = b.const(lengths.astype(np.int32), hint="lengths")
    else:
        lengths = _int32(b, sequence_lens)
    b.emit("REVERSE_SEQUENCE", [b.t(x), lengths], [b.out(b.outputs[0])], seqDim=time_axis, batchDim=batch_axis)


@lowering("Compress", since=9, emits=("GATHER", "RESHAPE"), dtypes=MOVED + ("bool",))
def compress(b, x, condition, *, axis=None):
    """A constant condition names the kept positions: GATHER them (from the flattened input without an axis)."""
    keep = np.asarray(const_of(condition, "condition")).astype(bool).reshape(-1)
    _static(x, "input")
    src = b.t(x)
    if axis is None:
        flat = b.like(x, [int(np.prod(x.shape))], "flat")
        b.emit("RESHAPE", [src, b.ints([-1])], [flat])
        src, axis, dim = flat, 0, int(np.prod(x.shape))
    else:
        axis %= x.rank
        dim = int(x.shape[axis])
    kept = np.flatnonzero(keep[:dim])
    if kept.size == 0:
        raise Unsupported("the condition keeps nothing: the output is empty, which TFLite cannot hold")
    b.emit("GATHER", [src, b.ints(kept, "kept")], [b.out(b.outputs[0])], axis=axis)

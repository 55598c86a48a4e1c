"""Resize / Upsample in every ONNX mode: nearest, linear and cubic, every coordinate transformation, antialias,
exclude_outside, axes and keep_aspect_ratio_policy.

A resize of static shape is separable and linear per axis: output = A_axis · input along each resized axis, with a
constant [out, in] matrix A that follows the spec (the ONNX reference evaluator's formulas). That matrix is computed
here in float64 and compared with the matrix each TFLite option set samples; the first exact match becomes
RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR. Otherwise the matrices are applied directly, which is exact for every mode:
a nearest matrix is one-hot (GATHER of its index table), any other is a BATCH_MATMUL over the axis (float only).
tf_crop_and_resize positions outside the input get `extrapolation_value` through one constant ADD.
"""
from __future__ import annotations

import math

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, NHWC
from edgekit.converters.tflite.lowerings._common import const_of
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape, physical

RESIZE_EMITS = ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "GATHER", "BATCH_MATMUL", "RESHAPE", "ADD", "SHAPE", "MUL")
RESIZE_DTYPES = ("float32", "int8")
TFLITE_OPTIONS = ((False, False), (False, True), (True, False))  # (alignCorners, halfPixelCenters)
COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn", "tf_crop_and_resize")
LENGTH_MODES = ("align_corners", "pytorch_half_pixel", "tf_crop_and_resize")  # formulas using the resized length
NEAREST = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


# --- the spec: source coordinates and per-axis interpolation matrices

def source_coords(out: int, size: int, scale: float, mode: str, roi=(0.0, 1.0), length=None) -> np.ndarray:
    """Where output index i samples the input, per coordinate_transformation_mode. `length` is the resized length
    the align_corners / pytorch_half_pixel / tf_crop_and_resize formulas use: the ONNX reference takes scale × size
    (fractional when scales are given), ONNX Runtime the integer output size."""
    x = np.arange(out, dtype=np.float64)
    length = scale * size if length is None else length
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        return size / 2 * (1 - out / length) + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length != 1 else np.full(out, -0.5)
    if mode == "align_corners":
        return x * (size - 1) / (length - 1) if length != 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if length == 1:
            return np.full(out, (end - start) * (size - 1) / 2 + start * (size - 1))
        return x * (end - start) * (size - 1) / (length - 1) + start * (size - 1)
    raise Unsupported(f"coordinate_transformation_mode={mode!r} is not an ONNX value")


def _linear(ratio, scale, antialias, a):
    if not antialias:
        return np.array([1 - ratio, ratio])
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1)
    coeffs = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * scale), 0, 1)
    return coeffs / coeffs.sum()


def _cubic(ratio, scale, antialias, a):
    def keys(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0
    if not antialias:
        return np.array([keys(ratio + 1), keys(ratio), keys(1 - ratio), keys(2 - ratio)])
    scale = min(scale, 1.0)
    start = int(np.floor(-2 / scale) + 1)
    coeffs = np.array([keys(scale * (i - ratio)) for i in range(start, 2 - start)])
    return coeffs / coeffs.sum()


def axis_matrix(size: int, out: int, scale: float, mode: str, coord_mode: str, nearest_mode: str = "floor",
                cubic_a: float = -0.75, exclude_outside: bool = False, antialias: bool = False,
                roi=(0.0, 1.0), length=None) -> tuple[np.ndarray, np.ndarray]:
    """The [out, size] matrix resizing one axis, and which outputs are extrapolated (their rows are zero)."""
    src = source_coords(out, size, scale, coord_mode, roi, length)
    outside = (src < 0) | (src > size - 1) if coord_mode == "tf_crop_and_resize" else np.zeros(out, bool)
    matrix = np.zeros((out, size))
    if mode == "nearest":
        index = np.clip(NEAREST[nearest_mode](src), 0, size - 1).astype(int)
        matrix[np.arange(out), index] = 1.0
    else:
        coeff_fn = _linear if mode == "linear" else _cubic
        for i, x in enumerate(src):
            floor = math.floor(x)
            coeffs = coeff_fn(1.0 if x == floor else x - floor, scale, antialias, cubic_a)
            k = len(coeffs)  # the k input indices nearest x, ties going to the smaller ones
            start = floor - k // 2 + (0 if x == floor else 1)
            idx = np.arange(start, start + k)
            if exclude_outside:
                coeffs = np.where((idx < 0) | (idx >= size), 0.0, coeffs)
                coeffs = coeffs / (coeffs.sum() or 1.0)
            np.add.at(matrix[i], np.clip(idx, 0, size - 1), coeffs)
    matrix[outside] = 0.0
    return matrix, outside


def tflite_matrix(size: int, out: int, align: bool, half: bool, nearest: bool) -> np.ndarray:
    """The matrix RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR sample with these options (the kernels' float32 math)."""
    f32 = np.float32
    x = np.arange(out, dtype=f32)
    scale = f32(size - 1) / f32(out - 1) if align and out > 1 else f32(size) / f32(out)
    matrix = np.zeros((out, size))
    if nearest:
        pos = (x + f32(0.5 if half else 0.0)) * scale
        index = np.sign(pos) * np.floor(np.abs(pos) + f32(0.5)) if align else np.floor(pos)  # TfLiteRound
        matrix[np.arange(out), np.clip(index, 0, size - 1).astype(int)] = 1.0
        return matrix
    pos = ((x + f32(0.5)) * scale - f32(0.5) if half else x * scale).astype(np.float64)
    lower = np.maximum(np.floor(pos), 0).astype(int)
    upper = np.minimum(np.ceil(pos), size - 1).astype(int)
    frac = pos - lower
    np.add.at(matrix, (np.arange(out), lower), 1 - frac)
    np.add.at(matrix, (np.arange(out), upper), frac)
    return matrix


# --- the plan: output sizes and scales per axis, as the spec derives them

def _plan(shape, scales, sizes, axes, policy):
    """(scale per axis, output size per axis) of an ONNX Resize, from scales or sizes (and axes, aspect policy)."""
    rank = len(shape)
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if sizes is not None and len(sizes):
        out = list(shape)
        for a, s in zip(axes, sizes):
            out[a] = int(s)
        factors = [o / i if i else 1.0 for o, i in zip(out, shape)]
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            if policy not in ("not_larger", "not_smaller"):
                raise Unsupported(f"keep_aspect_ratio_policy={policy!r} is not an ONNX value")
            scale = pick(factors[a] for a in axes)
            factors = [scale if a in axes else 1.0 for a in range(rank)]
            out = [int(scale * shape[a] + 0.5) if a in axes else shape[a] for a in range(rank)]
        return factors, out
    if scales is None or not len(scales):
        raise Unsupported("neither scales nor sizes is given")
    factors = [1.0] * rank
    for a, s in zip(axes, scales):
        factors[a] = float(s)
    return factors, [int(f * n) for f, n in zip(factors, shape)]


# --- lowering

def _resize(b, x, scales, sizes, mode, coord_mode="half_pixel", nearest_mode="round_prefer_floor", *, axes=None,
            cubic_a=-0.75, exclude_outside=0, antialias=0, extrapolation_value=0.0, roi=None, policy="stretch",
            legacy=False):
    y = b.outputs[0]
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear", "cubic"):
        raise Unsupported(f"mode={mode!r} is not an ONNX resize mode")
    if mode == "nearest" and nearest_mode not in NEAREST:
        raise Unsupported(f"nearest_mode={nearest_mode!r} is not an ONNX value")
    if coord_mode not in COORD_MODES:
        raise Unsupported(f"coordinate_transformation_mode={coord_mode!r} is not an ONNX value")
    if x.shape is None:
        raise Unsupported("resizing an input of unknown shape", hint="Fix the input shape with --input-shape.")
    if any(d == DYNAMIC for d in x.shape[1:]):  # the matrices below need the sizes: only TFLite's exact kernel case
        from edgekit.converters.tflite.lowerings.dynamic_resize import resize_at_run_time
        return resize_at_run_time(b, x, scales, sizes, mode, coord_mode, nearest_mode, axes, legacy)
    shape = [int(d) for d in x.shape]
    factors, out = _plan(shape, scales, sizes, axes, policy)
    if list(y.shape) != out:
        raise Unsupported(f"the output shape {list(y.shape)} differs from the {out} the resize parameters give")
    rank = len(shape)
    roi_pairs = [(0.0, 1.0)] * rank
    if coord_mode == "tf_crop_and_resize":
        if roi is None or not len(roi):
            raise Unsupported("coordinate_transformation_mode='tf_crop_and_resize' without an roi")
        listed = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
        half = len(roi) // 2
        for i, a in enumerate(listed):
            roi_pairs[a] = (float(roi[i]), float(roi[half + i]))
    matrices = {}  # axis -> (matrix, extrapolated) for the axes that change
    for a in range(rank):
        axis_mode = nearest_mode
        if legacy and mode == "nearest":  # Upsample / Resize-10: ONNX Runtime floors up-, ceils down-sampling
            axis_mode = "ceil" if factors[a] < 1 else "floor"
        if shape[a] == DYNAMIC:
            if factors[a] != 1.0:
                raise Unsupported("resizing a run-time batch dimension")
            continue
        args = (shape[a], out[a], factors[a], mode, coord_mode, axis_mode, cubic_a, bool(exclude_outside),
                bool(antialias), roi_pairs[a])
        matrix, outside = axis_matrix(*args)
        if coord_mode in LENGTH_MODES and not np.allclose(matrix, axis_matrix(*args, length=out[a])[0], atol=1e-6):
            raise Unsupported(f"coordinate_transformation_mode={coord_mode!r} with scale {factors[a]:g} on an axis of "
                              f"{shape[a]}: the resized length {factors[a] * shape[a]:g} is fractional, and the ONNX "
                              f"reference (which uses it) and ONNX Runtime (which uses the output size {out[a]}) "
                              "sample different points", hint="Give the output sizes instead of scales.")
        if matrix.shape != (shape[a], shape[a]) or not np.array_equal(matrix, np.eye(shape[a])) or outside.any():
            matrices[a] = (matrix, outside)
    if not matrices:
        b.alias(y, b.t(x))
        return
    if _builtin(b, x, y, matrices):
        return
    _by_matrices(b, x, y, matrices, extrapolation_value)


def _builtin(b, x, y, matrices) -> bool:
    """RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR when one of their option sets samples exactly the ONNX matrices."""
    if x.perm != NHWC or set(matrices) - {2, 3} or any(m[1].any() for m in matrices.values()):
        return False
    one_hot = all(_one_hot(m[0]) for m in matrices.values())
    in_hw, out_hw = [int(d) for d in x.shape[2:]], [int(d) for d in y.shape[2:]]
    for nearest in ((True, False) if one_hot else (False,)):
        for align, half in TFLITE_OPTIONS:
            if all(np.allclose(matrices[a][0], tflite_matrix(in_hw[a - 2], out_hw[a - 2], align, half, nearest),
                               atol=1e-6) for a in matrices):
                code = "RESIZE_NEAREST_NEIGHBOR" if nearest else "RESIZE_BILINEAR"
                b.emit(code, [b.t(x), b.ints(out_hw, "size")], [b.out(y)], alignCorners=align, halfPixelCenters=half)
                return True
    return False


def _one_hot(matrix) -> bool:
    return bool(np.all(np.count_nonzero(matrix, axis=1) == 1) and np.all(matrix.max(axis=1) == 1.0))


def _by_matrices(b, x, y, matrices, extrapolation_value) -> None:
    """Apply each axis's matrix: GATHER of its index table when one-hot, else BATCH_MATMUL over the axis."""
    src, shape = b.t(x), list(x.phys_shape)
    last = max(matrices)
    for a, (matrix, _) in sorted(matrices.items()):
        p = physical(a, x)
        shape[p] = matrix.shape[0]
        final = a == last and not any(m[1].any() for m in matrices.values())
        dst = b.out(y) if final else b.like(x, shape, hint=f"axis{a}")
        if _one_hot(matrix):
            b.emit("GATHER", [src, b.ints(np.argmax(matrix, axis=1), f"index{a}")], [dst], axis=p, batchDims=0)
        else:
            if x.quant is not None or np.dtype(x.dtype) != np.float32:
                raise Unsupported(f"an interpolating resize of {np.dtype(x.dtype).name} data that no TFLite resize "
                                  "option reproduces (its exact form is a float matrix product)",
                                  hint="Keep the resize in float, or use a mode RESIZE_BILINEAR reproduces.")
            _matmul_axis(b, src, dst, shape, p, matrix)
        src = dst
    outside = [m[1] if a in matrices else np.zeros(int(x.shape[a]), bool) for a, m in
               ((a, matrices.get(a)) for a in range(x.rank))]
    if any(o.any() for o in outside):
        mask = np.zeros([len(o) for o in outside], bool)
        for a, o in enumerate(outside):
            mask |= o.reshape([-1 if i == a else 1 for i in range(x.rank)])
        bias = np.where(mask, np.float32(extrapolation_value), np.float32(0))
        bias = np.transpose(bias, x.perm) if x.perm else bias
        if x.shape[0] == DYNAMIC:
            bias = bias[:1]
        b.emit("ADD", [src, b.const(bias.astype(np.float32), hint="extrapolated")], [b.out(y)])


def _matmul_axis(b, src, dst, out_shape, p, matrix) -> None:
    """dst = matrix · src over physical axis p, as [1, m, n] × [before, n, after] -> [before, m, after]."""
    in_shape = b.shape_of(src)
    before = DYNAMIC if DYNAMIC in in_shape[:p] else int(np.prod(in_shape[:p], dtype=np.int64))
    after = int(np.prod(in_shape[p + 1:], dtype=np.int64))
    m, n = matrix.shape
    folded = b.temp([before, n, after], hint="folded")
    b.emit("RESHAPE", [src, b.ints([before, n, after])], [folded])
    product = b.temp([before, m, after], hint="resized")
    b.emit("BATCH_MATMUL", [b.const(matrix[None].astype(np.float32), hint="interpolation"), folded], [product],
           adjX=False, adjY=False)
    b.emit("RESHAPE", [product, b.ints(dims_for_reshape(out_shape))], [dst])


def _scales(value, what="scales"):
    array = const_of(value, what)
    return None if array is None or not np.size(array) else np.asarray(array, np.float64)


@lowering("Upsample", since=7, emits=RESIZE_EMITS, layout="nhwc", dtypes=RESIZE_DTYPES)
def upsample_7(b, x, *, mode="nearest", scales=None):
    _resize(b, x, scales, None, mode, "asymmetric", legacy=True)


@lowering("Upsample", since=9, emits=RESIZE_EMITS, layout="nhwc", dtypes=RESIZE_DTYPES)
def upsample_9(b, x, scales, *, mode="nearest"):
    _resize(b, x, _scales(scales), None, mode, "asymmetric", legacy=True)


@lowering("Resize", since=10, emits=RESIZE_EMITS, layout="nhwc", dtypes=RESIZE_DTYPES)
def resize_10(b, x, scales, *, mode="nearest"):
    _resize(b, x, _scales(scales), None, mode, "asymmetric", legacy=True)


@lowering("Resize", since=11, emits=RESIZE_EMITS, layout="nhwc", dtypes=RESIZE_DTYPES)
def resize_11(b, x, roi=None, scales=None, sizes=None, *, coordinate_transformation_mode="half_pixel",
              cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, mode="nearest",
              nearest_mode="round_prefer_floor"):
    _resize(b, x, _scales(scales), _scales(sizes, "sizes"), mode, coordinate_transformation_mode, nearest_mode,
            cubic_a=cubic_coeff_a, exclude_outside=exclude_outside, extrapolation_value=extrapolation_value,
            roi=_roi(roi, coordinate_transformation_mode))


@lowering("Resize", since=18, emits=RESIZE_EMITS, layout="nhwc", dtypes=RESIZE_DTYPES)
def resize_18(b, x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
              coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
              extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
              nearest_mode="round_prefer_floor"):
    _resize(b, x, _scales(scales), _scales(sizes, "sizes"), mode, coordinate_transformation_mode, nearest_mode,
            axes=axes, cubic_a=cubic_coeff_a, exclude_outside=exclude_outside, antialias=antialias and mode != "nearest",
            extrapolation_value=extrapolation_value, roi=_roi(roi, coordinate_transformation_mode),
            policy=keep_aspect_ratio_policy)


def _roi(roi, coord_mode):
    """The roi matters only to tf_crop_and_resize; elsewhere it may be anything, even computed at run time."""
    return _scales(roi, "roi") if coord_mode == "tf_crop_and_resize" else None

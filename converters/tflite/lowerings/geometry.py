"""Geometry with compile-time shapes: CenterCropPad (a SLICE and a PAD) and AffineGrid (a constant base grid
times theta)."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of
from edgekit.converters.tflite.registry import Unsupported, lowering


@lowering("CenterCropPad", since=18, emits=("SLICE", "PAD"), dtypes=("float32", "int32", "int8"))
def center_crop_pad(b, x, shape, *, axes=None):
    """Each listed axis is cropped to (or zero-padded up to) its target, centred; an odd difference puts the extra
    element at the end, as the reference does (start = difference // 2)."""
    target = [int(s) for s in np.asarray(const_of(shape, "shape")).reshape(-1)]
    axes = list(range(x.rank)) if axes is None else [int(a) % x.rank for a in axes]
    if len(axes) != len(target) or len(set(axes)) != len(axes):
        raise Unsupported(f"shape {target} does not give one size per axis of {axes}")
    dims = [int(d) for d in x.shape]
    begin, cropped, pads = [0] * x.rank, list(dims), np.zeros((x.rank, 2), np.int32)
    for axis, size in zip(axes, target):
        if size < dims[axis]:
            begin[axis], cropped[axis] = (dims[axis] - size) // 2, size
        elif size > dims[axis]:
            pads[axis] = [(size - dims[axis]) // 2, size - dims[axis] - (size - dims[axis]) // 2]
    y = b.outputs[0]
    src = b.t(x)
    if cropped != dims:
        dest = b.out(y) if not pads.any() else b.like(x, cropped, hint="cropped")
        b.emit("SLICE", [src, b.ints(begin, "begin"), b.ints(cropped, "size")], [dest])
        src = dest
    if pads.any():
        b.emit("PAD", [src, b.const(pads, hint="paddings")], [b.out(y)])
    elif cropped == dims:
        b.alias(y, src)


def base_grid(sizes, align_corners: int) -> np.ndarray:
    """[prod(sizes), len(sizes) + 1]: the normalized coordinates of every output point, innermost axis first
    (x, y[, z]), then 1 for the translation column of theta."""
    coords = []
    for n in sizes:
        if align_corners:
            coords.append(np.linspace(-1.0, 1.0, n) if n > 1 else np.full(1, -1.0))
        else:
            coords.append((np.arange(n) * 2.0 + 1.0) / n - 1.0)
    mesh = np.meshgrid(*coords, indexing="ij")
    columns = [m.reshape(-1) for m in reversed(mesh)] + [np.ones(int(np.prod(sizes)))]
    return np.stack(columns, axis=1)


@lowering("AffineGrid", since=20, emits=("BATCH_MATMUL", "RESHAPE"))
def affine_grid(b, theta, size, *, align_corners=0):
    """grid[n, ..., :] = theta[n] @ (x, y[, z], 1): one BATCH_MATMUL of the constant base grid by theta (adjoint),
    reshaped to [N, (D,) H, W, 2 or 3]."""
    sizes = [int(s) for s in np.asarray(const_of(size, "size")).reshape(-1)]
    if len(sizes) not in (4, 5):
        raise Unsupported(f"size {sizes}: only 2-D ([N,C,H,W]) and 3-D ([N,C,D,H,W]) grids exist")
    spatial_sizes = sizes[2:]
    grid = base_grid(spatial_sizes, align_corners).astype(np.float32)
    y = b.outputs[0]
    points = b.temp([theta.shape[0], grid.shape[0], len(spatial_sizes)], hint="points")
    b.emit("BATCH_MATMUL", [b.const(grid[None], hint="base_grid"), b.t(theta)], [points], adjY=True)
    b.emit("RESHAPE", [points, b.ints([-1, *spatial_sizes, len(spatial_sizes)], "shape")], [b.out(y)])

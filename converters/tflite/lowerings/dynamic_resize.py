"""Resize of an image whose height or width is only known at run time (a segmentation net converted once for every
image size): the interpolation matrices of resize.py need the sizes, so this form takes only the case TFLite's own
kernel computes exactly at every size.

    Resize(x: [N, C, H?, W?], scales [1, 1, s, s], nearest, asymmetric, floor)  (torch's Upsample / interpolate)
        -> RESIZE_NEAREST_NEIGHBOR(x, SHAPE(x)[1:3] * s)   on NHWC data

TFLite's nearest kernel reads input row floor(out * (in / out)) (float32 ratio); with a power-of-two scale s the ratio
is exactly 1 / s, so that is ONNX's floor(out / s) at every size. Anything else is refused, naming the reason.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC
from edgekit.converters.tflite.registry import Unsupported

HINT = "Fix the input shapes with --input-shape NAME=DIMS, e.g. --input-shape x=1x3x256x256."


def resize_at_run_time(b, x, scales, sizes, mode, coord_mode, nearest_mode, axes, legacy) -> None:
    y = b.outputs[0]
    if x.rank != 4 or x.shape[1] == DYNAMIC:
        raise Unsupported("resizing a run-time size of a tensor that is not [N, C, H, W] with static channels", HINT)
    if sizes is not None and len(sizes) or scales is None or not len(scales):
        raise Unsupported("resizing a run-time size to given sizes (only constant scales keep at every size)", HINT)
    rank = x.rank
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    factors = [1.0] * rank
    for a, s in zip(axes, scales):
        factors[a] = float(s)
    if factors[:2] != [1.0, 1.0]:
        raise Unsupported(f"scales {factors} resize the batch or channels of a run-time size", HINT)
    hw = factors[2:]
    if any(f < 1 or f != int(f) or int(f) & (int(f) - 1) for f in hw):
        raise Unsupported(f"scales {hw} on a run-time height/width: only power-of-two upscaling is exact at every "
                          f"size in TFLite's nearest kernel", HINT)
    if mode != "nearest" or not (legacy or (coord_mode == "asymmetric" and nearest_mode == "floor")):
        raise Unsupported(f"mode={mode!r} (coordinate_transformation_mode={coord_mode!r}, nearest_mode="
                          f"{nearest_mode!r}) on a run-time height/width: only nearest, asymmetric, floor (PyTorch's "
                          f"Upsample) is exact at every size", HINT)
    from edgekit.converters.tflite.writer import schema
    shape = b.temp([4], np.int32, "shape")
    b.emit("SHAPE", [b.t(x)], [shape], outType=schema().TensorType.INT32)
    hw_now = b.temp([2], np.int32, "hw")
    b.emit("GATHER", [shape, b.ints([1, 2], "hw_dims")], [hw_now], axis=0)  # NHWC: H, W
    size = b.temp([2], np.int32, "size")
    b.emit("MUL", [hw_now, b.ints([int(f) for f in hw], "scale")], [size])
    b.emit("RESIZE_NEAREST_NEIGHBOR", [b.t(x), size], [b.out(y)], alignCorners=False, halfPixelCenters=False)

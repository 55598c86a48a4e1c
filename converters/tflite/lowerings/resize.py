"""Resize / Upsample (nearest, bilinear) on NHWC data. The ONNX sampling grid is computed and compared
with what each TFLite option set samples; the first exact match is used, none is an error."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of, require_rank, spatial
from edgekit.converters.tflite.registry import Unsupported, lowering

RESIZE_EMITS = ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
TFLITE_OPTIONS = ((False, False), (False, True), (True, False))  # (alignCorners, halfPixelCenters)
NEAREST = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def onnx_coords(out: int, size: int, scale: float, mode: str) -> np.ndarray:
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "align_corners":
        return x * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise Unsupported(f"coordinate_transformation_mode={mode!r}")


def tflite_coords(out: int, size: int, align_corners: bool, half_pixel: bool, nearest: bool) -> np.ndarray:
    x = np.arange(out, dtype=np.float64)
    if align_corners:
        scale = (size - 1) / (out - 1) if out > 1 else 0.0
        return np.round(x * scale) if nearest else x * scale
    scale = size / out
    if nearest:
        return np.floor((x + 0.5) * scale) if half_pixel else np.floor(x * scale)
    return (x + 0.5) * scale - 0.5 if half_pixel else x * scale


def _grid(mode, coord_mode, nearest_mode, size, out, scale):
    src = onnx_coords(out, size, scale, coord_mode)
    if mode == "nearest":
        src = NEAREST[nearest_mode](src)
    return np.clip(src, 0, size - 1)


def _resize(b, x, scales, sizes, mode, coord_mode="asymmetric", nearest_mode="floor"):
    require_rank(x, 4, "resizing a 4-D input")
    y = b.outputs[0]
    if mode not in ("nearest", "linear", "bilinear"):
        raise Unsupported(f"mode={mode!r}; TFLite resizes nearest or bilinear", hint="Use nearest or linear.")
    if nearest_mode not in NEAREST:
        raise Unsupported(f"nearest_mode={nearest_mode!r}")
    if list(y.shape[:2]) != list(x.shape[:2]):
        raise Unsupported("resizing the batch or channel dimension")
    in_hw, out_hw = spatial(x), spatial(y)
    factors = [float(s) for s in scales[2:]] if scales is not None and len(scales) else [o / i for o, i in zip(out_hw, in_hw)]
    nearest = mode == "nearest"
    wanted = [_grid(mode, coord_mode, nearest_mode, i, o, f) for i, o, f in zip(in_hw, out_hw, factors)]
    for align, half in TFLITE_OPTIONS:
        got = [np.clip(tflite_coords(o, i, align, half, nearest), 0, i - 1) for i, o in zip(in_hw, out_hw)]
        if all(np.allclose(w, g, atol=1e-6) for w, g in zip(wanted, got)):
            code = "RESIZE_NEAREST_NEIGHBOR" if nearest else "RESIZE_BILINEAR"
            b.emit(code, [b.t(x), b.ints(out_hw, "size")], [b.out(y)], alignCorners=align, halfPixelCenters=half)
            return
    raise Unsupported(f"{mode} resize with coordinate_transformation_mode={coord_mode!r}"
                      + (f", nearest_mode={nearest_mode!r}" if nearest else "")
                      + f" from {in_hw} to {out_hw} samples a grid no TFLite resize reproduces",
                      hint="Use integer scale factors, or half_pixel / align_corners / asymmetric modes.")


@lowering("Upsample", since=7, emits=RESIZE_EMITS, layout="nhwc", dtypes=("float32", "int8"))
def upsample_7(b, x, *, mode="nearest", scales=None):
    _resize(b, x, scales, None, mode)


@lowering("Upsample", since=9, emits=RESIZE_EMITS, layout="nhwc", dtypes=("float32", "int8"))
def upsample_9(b, x, scales, *, mode="nearest"):
    _resize(b, x, const_of(scales, "scales"), None, mode)


@lowering("Resize", since=10, emits=RESIZE_EMITS, layout="nhwc", dtypes=("float32", "int8"))
def resize_10(b, x, scales, *, mode="nearest"):
    _resize(b, x, const_of(scales, "scales"), None, mode)


def _check_resize_attrs(mode, cubic_coeff_a, exclude_outside, roi, coord_mode):
    if coord_mode == "tf_crop_and_resize":
        raise Unsupported("coordinate_transformation_mode='tf_crop_and_resize'")
    del mode, cubic_coeff_a, exclude_outside, roi  # only meaningful for cubic / crop modes, rejected above


@lowering("Resize", since=11, emits=RESIZE_EMITS, layout="nhwc", dtypes=("float32", "int8"))
def resize_11(b, x, roi=None, scales=None, sizes=None, *, coordinate_transformation_mode="half_pixel",
              cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, mode="nearest",
              nearest_mode="round_prefer_floor"):
    _check_resize_attrs(mode, cubic_coeff_a, exclude_outside, roi, coordinate_transformation_mode)
    _resize(b, x, const_of(scales, "scales"), const_of(sizes, "sizes"), mode, coordinate_transformation_mode,
            nearest_mode)


@lowering("Resize", since=18, emits=RESIZE_EMITS, layout="nhwc", dtypes=("float32", "int8"))
def resize_18(b, x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
              coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
              extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
              nearest_mode="round_prefer_floor"):
    if antialias and mode != "nearest":
        raise Unsupported("antialias=1")
    if axes is not None and sorted(int(a) % 4 for a in axes) != [2, 3]:
        raise Unsupported(f"axes={axes}; only the spatial axes can be resized")
    _check_resize_attrs(mode, cubic_coeff_a, exclude_outside, roi, coordinate_transformation_mode)
    scales = const_of(scales, "scales")
    if scales is not None and axes is not None and len(scales) == 2:
        scales = np.concatenate([[1.0, 1.0], scales])
    _resize(b, x, scales, const_of(sizes, "sizes"), mode, coordinate_transformation_mode, nearest_mode)

"""Semantic segmentation in apps: per-pixel class logits → a class mask at the image's own size, and mIoU.

The logits are resampled to the image before the argmax (bilinear, as torchvision's and most segmentation heads'
own `interpolate(...).argmax(1)`): an argmax first and a nearest resize after gives staircase edges one model pixel
wide at every boundary. One sampling grid maps each image pixel centre through the preprocessing (plain resize or
letterbox: gain and padding) and the head's stride into the logits, so padding never leaks into the mask and heads
at 1/4 or 1/8 of the input size work the same. numpy only (apps load this).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgekit.errors import UsageError

__all__ = ["logits_output", "class_mask", "confusion", "miou"]


def logits_output(outputs: Sequence, input_hw: tuple[int, int], prefer: str = "NCHW"):
    """The model output holding per-pixel class logits and its layout: (info, "NCHW" | "NHWC").

    A rank-4 output [1, C, h, w] or [1, h, w, C] with at least two classes whose h:w is the input's (the head may
    be strided). Both layouts fitting (a square input and a square head with C == h) → `prefer` (the input's)."""
    candidates = []
    for info in outputs:
        shape = info.shape
        if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            continue
        for layout, (c, h, w) in (("NCHW", shape[1:]), ("NHWC", (shape[3], shape[1], shape[2]))):
            if c >= 2 and h * input_hw[1] == w * input_hw[0] and h <= input_hw[0]:
                candidates.append((info, layout))
    if len({id(info) for info, _ in candidates}) != 1:
        found = "several" if candidates else "no"
        raise UsageError(f"segment() found {found} per-pixel class-logit outputs among "
                         f"{[(o.name, o.describe()['shape']) for o in outputs]} for a "
                         f"{input_hw[0]}x{input_hw[1]} input.",
                         hint="A segmentation model ends in one output [1, classes, h, w] (or [1, h, w, classes]) "
                              "with classes >= 2 and the input's aspect ratio.")
    if len(candidates) == 2:
        return next(c for c in candidates if c[1] == prefer)
    return candidates[0]


def class_mask(logits: np.ndarray, layout: str, image_hw: tuple[int, int], input_hw: tuple[int, int],
               gain: tuple[float, float] | None = None, pad: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Class index per image pixel [H, W] (uint8 up to 256 classes, else int32).

    logits: [1, C, h, w] (layout NCHW) or [1, h, w, C]; image_hw: the original image's size; input_hw: the
    model input's; gain/pad: how the image was fitted into the input (edgekit.app.letterbox's (gain_y, gain_x),
    (pad_y, pad_x)); gain defaults to a plain resize."""
    x = np.asarray(logits, np.float32)
    x = x[0] if x.ndim == 4 else x
    if layout == "NCHW":
        x = np.transpose(x, (1, 2, 0))  # h, w, C
    h, w = x.shape[:2]
    gain = gain or (input_hw[0] / image_hw[0], input_hw[1] / image_hw[1])
    rows = _sampling(image_hw[0], h, gain[0] * h / input_hw[0], pad[0] * h / input_hw[0])
    cols = _sampling(image_hw[1], w, gain[1] * w / input_hw[1], pad[1] * w / input_hw[1])
    upsampled = np.einsum("oh,hwc->owc", rows, x, optimize=True)
    upsampled = np.einsum("pw,owc->opc", cols, upsampled, optimize=True)
    mask = upsampled.argmax(-1)
    return mask.astype(np.uint8 if x.shape[2] <= 256 else np.int32)


def _sampling(n_image: int, n_logits: int, scale: float, offset: float) -> np.ndarray:
    """(n_image, n_logits) bilinear weights: image pixel centre i + 0.5 sits at (i + 0.5) * scale + offset in the
    logits' pixels (half-pixel centres, as interpolate(align_corners=False)). Positions are clamped to the image's
    own region (offset .. offset + n_image * scale), so a strided head's padding rows never blend into the edge."""
    pos = (np.arange(n_image) + 0.5) * scale + offset - 0.5
    pos = np.clip(pos, offset, max(offset, offset + n_image * scale - 1))
    lo = np.floor(pos)
    frac = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int64)
    weights = np.zeros((n_image, n_logits), np.float32)
    idx = np.arange(n_image)
    np.add.at(weights, (idx, np.clip(lo, 0, n_logits - 1)), 1 - frac)
    np.add.at(weights, (idx, np.clip(lo + 1, 0, n_logits - 1)), frac)
    return weights


def confusion(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] pixel counts (row: true class, column: predicted); add them up over a dataset."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    if predicted.shape != truth.shape:
        raise UsageError(f"A predicted mask has {predicted.size} pixels and its true mask {truth.size}.")
    if predicted.size and (predicted.min() < 0 or predicted.max() >= num_classes):
        raise UsageError(f"A predicted mask holds class {int(predicted.max())}; num_classes is {num_classes}.")
    valid = (truth >= 0) & (truth < num_classes)
    pairs = truth[valid].astype(np.int64) * num_classes + predicted[valid].astype(np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(matrix: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean IoU over the classes that occur (in the truth or the predictions) and each class's IoU (nan if absent)."""
    matrix = np.asarray(matrix, np.float64)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    per_class = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    return float(np.nanmean(per_class)) if np.any(union > 0) else float("nan"), per_class

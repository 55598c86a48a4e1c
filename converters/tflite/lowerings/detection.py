"""Object-detection ops: NonMaxSuppression as one NON_MAX_SUPPRESSION_V5 per (batch, class), giving ONNX's exact
[num_selected, 3] (batch, class, box) output.

ONNX's output size is set by the values (how many boxes survive); a TFLite tensor can still take a size at run time:
V5 writes a fixed-size index list plus a valid count, a SLICE sized by that count cuts it, and CONCATENATION joins
the pieces, so the compiled model's output is ONNX's, row for row (LiteRT resizes dynamic tensors when it runs).
Measured against ONNX Runtime: same rows in the same order (batch, then class, then descending score). A score equal to
score_threshold is dropped by both; an IoU equal to iou_threshold keeps the box in ONNX but V5 suppresses it, so V5
gets the next float up as its threshold (exact, iou_threshold=0 included). iou_threshold=1 is refused: no float above
it works (V5 returned wrong indices above 1 on LiteRT). Center-form boxes must have sizes >= 0: ONNX Runtime computes
negative areas for negative sizes, V5 takes corners in any order.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC
from edgekit.converters.tflite.lowerings._common import const_of, require_rank
from edgekit.converters.tflite.registry import Unsupported, lowering

NMS_EMITS = ("NON_MAX_SUPPRESSION_V5", "SLICE", "RESHAPE", "CONCATENATION", "MUL", "SUB", "ADD", "CAST")


def _scalar(value, what: str, default, dtype):
    data = const_of(value, what, None)
    if data is None:
        return dtype(default)
    data = np.asarray(data).reshape(-1)
    if data.size != 1:
        raise Unsupported(f"its {what} input has {data.size} values; ONNX takes one")
    return dtype(data[0])


def _scalar_const(b, value, hint: str) -> str:
    """A rank-0 constant: V5 checks its thresholds and size are scalars (Builder.const's ascontiguousarray makes
    a 0-d array 1-d)."""
    name = b.const(value, hint=hint)
    tensor = b.g.tensors[name]
    tensor.shape, tensor.data = [], tensor.data.reshape(())
    return name


def _corners(b, boxes: str, count: int) -> str:
    """[x_center, y_center, w, h] -> [x1, y1, x2, y2], computed as ONNX Runtime does (center -/+ size / 2)."""
    centers, sizes = b.temp([count, 2], np.float32, "centers"), b.temp([count, 2], np.float32, "sizes")
    b.emit("SLICE", [boxes, b.ints([0, 0], "begin"), b.ints([count, 2], "size")], [centers])
    b.emit("SLICE", [boxes, b.ints([0, 2], "begin"), b.ints([count, 2], "size")], [sizes])
    half = b.temp([count, 2], np.float32, "half")
    b.emit("MUL", [sizes, b.const(np.float32(0.5), hint="half")], [half])
    low, high = b.temp([count, 2], np.float32, "low"), b.temp([count, 2], np.float32, "high")
    b.emit("SUB", [centers, half], [low])
    b.emit("ADD", [centers, half], [high])
    corners = b.temp([count, 4], np.float32, "corners")
    b.emit("CONCATENATION", [low, high], [corners], axis=1)
    return corners


def _nms(b, boxes, scores, max_output, iou_threshold, score_threshold, center_point_box):
    selected = b.outputs[0]
    require_rank(boxes, 3, "boxes of rank 3 [batch, boxes, 4]")
    require_rank(scores, 3, "scores of rank 3 [batch, classes, boxes]")
    if boxes.is_dynamic or scores.is_dynamic:
        raise Unsupported("the batch, class and box counts must be static: one NMS is emitted per batch and class",
                          hint="Fix the input shapes with --input-shape.")
    if boxes.perm or scores.perm:
        raise Unsupported("boxes and scores must arrive in ONNX layout")
    batch, count, _ = (int(d) for d in boxes.shape)
    classes = int(scores.shape[1])
    per_class = _scalar(max_output, "max_output_boxes_per_class", 0, int)
    if per_class <= 0:
        raise Unsupported(f"max_output_boxes_per_class={per_class} selects nothing: an always-empty output, "
                          "which TFLite cannot hold", hint="Give max_output_boxes_per_class > 0.")
    per_class = min(per_class, count)
    iou = _scalar(iou_threshold, "iou_threshold", 0.0, np.float32)
    if not 0.0 <= iou <= 1.0:
        raise Unsupported(f"iou_threshold={iou} is outside [0, 1], where ONNX Runtime refuses it too")
    if iou == 1.0:
        raise Unsupported("iou_threshold=1 (suppress nothing): V5 suppresses identical boxes at 1 and returns wrong "
                          "indices above it", hint="Use an iou_threshold below 1, or leave NMS out of the model.")
    iou = np.nextafter(iou, np.float32(2))  # V5 suppresses at IoU >= its threshold, ONNX at IoU > it
    score = _scalar(score_threshold, "score_threshold", np.finfo(np.float32).min, np.float32)  # absent: keep all
    if center_point_box not in (0, 1):
        raise Unsupported(f"center_point_box={center_point_box} is not an ONNX value (0 or 1)")

    constants = [_scalar_const(b, np.int32(per_class), "max_output"), _scalar_const(b, iou, "iou_threshold"),
                 _scalar_const(b, score, "score_threshold"), _scalar_const(b, np.float32(0.0), "soft_nms_sigma")]
    pieces = []
    for n in range(batch):
        boxes_n = b.temp([count, 4], np.float32, f"boxes{n}")
        b.emit("SLICE", [b.t(boxes), b.ints([n, 0, 0], "begin"), b.ints([1, count, 4], "size")],
               [boxes_3d := b.temp([1, count, 4], np.float32, f"boxes{n}_3d")])
        b.emit("RESHAPE", [boxes_3d, b.ints([count, 4])], [boxes_n], newShape=[count, 4])
        if center_point_box:
            boxes_n = _corners(b, boxes_n, count)
        for c in range(classes):
            scores_3d, scores_nc = b.temp([1, 1, count], np.float32, "scores_3d"), b.temp([count], np.float32, "scores")
            b.emit("SLICE", [b.t(scores), b.ints([n, c, 0], "begin"), b.ints([1, 1, count], "size")], [scores_3d])
            b.emit("RESHAPE", [scores_3d, b.ints([count])], [scores_nc], newShape=[count])
            indices = b.temp([per_class], np.int32, f"indices{n}_{c}")
            kept_scores = b.temp([per_class], np.float32, f"kept_scores{n}_{c}")
            valid = b.temp([], np.int32, f"valid{n}_{c}")
            b.emit("NON_MAX_SUPPRESSION_V5", [boxes_n, scores_nc, *constants], [indices, kept_scores, valid])
            column = b.temp([per_class, 1], np.int32, "column")
            b.emit("RESHAPE", [indices, b.ints([per_class, 1])], [column], newShape=[per_class, 1])
            rows = b.temp([per_class, 3], np.int32, "rows")
            prefix = b.const(np.tile(np.int32([n, c]), (per_class, 1)), hint="batch_class")
            b.emit("CONCATENATION", [prefix, column], [rows], axis=1)
            valid_1d, size = b.temp([1], np.int32, "valid_1d"), b.temp([2], np.int32, "size")
            b.emit("RESHAPE", [valid, b.ints([1])], [valid_1d], newShape=[1])
            b.emit("CONCATENATION", [valid_1d, b.ints([3], "columns")], [size], axis=0)
            piece = b.temp([DYNAMIC, 3], np.int32, f"selected{n}_{c}")
            b.emit("SLICE", [rows, b.ints([0, 0], "begin"), size], [piece])
            pieces.append(piece)
    result = pieces[0]
    if len(pieces) > 1:
        result = b.temp([DYNAMIC, 3], np.int32, "selected")
        b.emit("CONCATENATION", pieces, [result], axis=0)
    if np.dtype(selected.dtype) != np.int32:
        cast = b.temp([DYNAMIC, 3], selected.dtype, "selected_cast")
        b.emit("CAST", [result], [cast])
        result = cast
    b.alias(selected, result)


@lowering("NonMaxSuppression", since=10, emits=NMS_EMITS, dtypes=("float32", "int64", "int32"))
def non_max_suppression(b, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None,
                        *, center_point_box=0):
    _nms(b, boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold, center_point_box)

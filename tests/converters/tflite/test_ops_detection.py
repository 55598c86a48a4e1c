"""NonMaxSuppression: ONNX Runtime's selected (batch, class, box) rows, exactly, from NON_MAX_SUPPRESSION_V5 per batch
and class; thresholds at their boundaries; the cases the compiler refuses with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError
from test_ops import Row, i64

NMS = "y = NonMaxSuppression(b, s, m, i, t)"
ROWS_OPS = {"NON_MAX_SUPPRESSION_V5", "SLICE", "RESHAPE", "CONCATENATION"}
CENTER_OPS = ROWS_OPS | {"MUL", "SUB", "ADD"}


def f1(value):
    return np.asarray([value], np.float32)


ROWS = [
    Row("NonMaxSuppression", 11, NMS, inputs="float[1,8,4] b, float[1,2,8] s", outputs="int64[N,3] y", ops=ROWS_OPS,
        inits={"m": i64(3), "i": f1(0.3), "t": f1(0.0)}),
    # center boxes need sizes >= 0 (Abs); no iou_threshold is 0: any overlap suppresses
    Row("NonMaxSuppression", 10, "a = Abs(b)\ny = NonMaxSuppression <center_point_box=1> (a, s, m)",
        inputs="float[2,6,4] b, float[2,3,6] s", outputs="int64[N,3] y", ops=CENTER_OPS | {"ABS"},
        inits={"m": i64(10)}, id="center_boxes_no_thresholds"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def corner_boxes(rng, batch, count, flip=False):
    xy = rng.uniform(0, 10, (batch, count, 2))
    wh = rng.uniform(0.5, 5, (batch, count, 2))
    boxes = np.concatenate([xy, xy + wh], -1)
    if flip:  # ONNX takes either diagonal pair of corners
        boxes = np.where(rng.uniform(size=(batch, count, 1)) < 0.5, boxes[..., [2, 3, 0, 1]], boxes)
    return boxes.astype(np.float32)


def nms_model(batch, classes, count, per_class, iou, score, center=0):
    return model_text(f"y = NonMaxSuppression <center_point_box={center}> (b, s, m, i, t)",
                      f"float[{batch},{count},4] b, float[{batch},{classes},{count}] s", "int64[N,3] y", 11,
                      m=i64(per_class), i=f1(iou), t=f1(score))


@pytest.mark.parametrize("seed", range(6))
def test_selected_rows_equal_onnx_runtime_on_crowded_scenes(seed):
    """Overlapping random boxes over 3 classes and 2 images: the same rows in ONNX Runtime's order (exact)."""
    rng = np.random.default_rng(seed)
    per_class, iou, score = [(5, 0.5, 0.3), (40, 0.3, 0.0), (2, 0.7, 0.6)][seed % 3]
    feeds = {"b": corner_boxes(rng, 2, 40, flip=seed % 2 == 1),
             "s": rng.uniform(0, 1, (2, 3, 40)).astype(np.float32)}
    assert_converts(nms_model(2, 3, 40, per_class, iou, score), feeds, atol=0, rtol=0)


def test_center_point_boxes_equal_onnx_runtime():
    rng = np.random.default_rng(7)
    centers = rng.uniform(0, 10, (1, 30, 2))
    feeds = {"b": np.concatenate([centers, rng.uniform(1, 4, (1, 30, 2))], -1).astype(np.float32),
             "s": rng.uniform(0, 1, (1, 2, 30)).astype(np.float32)}
    assert_converts(nms_model(1, 2, 30, 30, 0.4, 0.1, center=1), feeds, expect_ops=CENTER_OPS, atol=0, rtol=0)


def test_thresholds_at_their_boundaries_match():
    """A score equal to score_threshold is dropped; an IoU equal to iou_threshold keeps the box (both runtimes)."""
    boxes = np.asarray([[[0, 0, 2, 2], [1, 0, 3, 2], [10, 10, 11, 11], [20, 20, 21, 21]]], np.float32)
    scores = np.asarray([[[0.9, 0.8, 0.5, 0.4]]], np.float32)  # IoU(box0, box1) = 2 / 6 = 1/3
    for iou, score in [(1 / 3, 0.5), (0.33, 0.4), (0.34, 0.39), (0.0, 0.0), (0.5, 0.5)]:
        assert_converts(nms_model(1, 1, 4, 4, iou, score), {"b": boxes, "s": scores}, atol=0, rtol=0)


def test_selecting_no_box_gives_an_empty_output():
    boxes = corner_boxes(np.random.default_rng(0), 1, 5)
    scores = np.full((1, 2, 5), 0.1, np.float32)
    assert_converts(nms_model(1, 2, 5, 3, 0.5, 0.5), {"b": boxes, "s": scores}, atol=0, rtol=0)


@pytest.mark.parametrize("inits, reason", [
    ({"m": i64(0)}, "selects nothing"),
    ({"m": i64(3), "i": f1(1.5)}, "outside \\[0, 1\\]"),
    ({"m": i64(3), "i": f1(1.0)}, "iou_threshold=1 \\(suppress nothing\\)"),
])
def test_unsupported_cases_name_the_reason(inits, reason):
    inputs = ", ".join(["m"] + [k for k in ("i",) if k in inits])
    text = model_text(f"y = NonMaxSuppression(b, s, {inputs})", "float[1,4,4] b, float[1,1,4] s", "int64[N,3] y", 11,
                      **inits)
    with pytest.raises(UnsupportedModelError, match=reason):
        compile_onnx(as_model(text))


def test_run_time_max_output_is_refused():
    text = model_text("y = NonMaxSuppression(b, s, m)", "float[1,4,4] b, float[1,1,4] s, int64[1] m", "int64[N,3] y", 11)
    with pytest.raises(UnsupportedModelError, match="max_output_boxes_per_class input 'm' is computed at run time"):
        compile_onnx(as_model(text))

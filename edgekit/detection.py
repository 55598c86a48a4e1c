"""Single-stage detector heads: box decoding and NMS appended to an exported ONNX head (fixed-size outputs that ONNX
Runtime and the TFLite compiler both run), and the same decode + NMS in numpy for models that end before NMS.

A head in the "yolo" format is one tensor [1, 4 + C, A]: per anchor point, the box centre and size (cx, cy, w, h) in
input pixels and C class scores in [0, 1] (the layout of Ultralytics' exported heads; box_format="xyxy" reads the
four box rows as corners instead, as an SSD box coder gives them). `append_nms` makes a model whose
outputs are `boxes` [1, max_det, 4] (x1, y1, x2, y2), `scores` [1, max_det], `classes` [1, max_det] and `count` [1]:
rows past `count` are padding (box 0, score 0, class -1). NMS is per class (each anchor's best class, boxes offset by
class so classes never suppress each other, as Ultralytics does) or class-agnostic, and keeps the `max_det` best.

numpy only at import (apps load this); onnx is imported by `append_nms` alone.
"""
from __future__ import annotations

import json

import numpy as np

from edgekit.errors import UsageError

#: metadata key (ONNX metadata_props, carried into TFLite metadata) naming a model's detection outputs
DETECTIONS_KEY = "edgekit.detections"
#: metadata key of a model ending in a detection head (the app decodes and runs NMS in numpy)
HEAD_KEY = "edgekit.detection_head"
OUTPUT_NAMES = ("boxes", "scores", "classes", "count")
#: how a head gives each anchor's box: centre and size (Ultralytics) or corners
BOX_FORMATS = ("xywh", "xyxy")
#: per-class NMS in one call: boxes of class k move by k * CLASS_OFFSET pixels (larger than any image side)
CLASS_OFFSET = 8192.0


def check_box_format(box_format: str) -> str:
    if box_format not in BOX_FORMATS:
        raise UsageError(f"Unknown box format {box_format!r} for the detection head.",
                         hint="Choose xywh (centre x, centre y, width, height; Ultralytics' heads) or xyxy (corners).")
    return box_format


def nms_options(conf: float = 0.25, iou: float = 0.45, max_det: int = 100, agnostic: bool = False,
                box_format: str = "xywh", head: str | None = None) -> dict:
    """Checked keyword arguments for `append_nms` (what `edgekit export --nms` passes), so bad options fail before
    an export spends its time."""
    check_thresholds(conf, iou, max_det)
    check_box_format(box_format)
    return {"conf": float(conf), "iou": float(iou), "max_det": int(max_det), "agnostic": bool(agnostic),
            "box_format": box_format, "head": head}


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    for name, value in (("conf", conf), ("iou", iou)):
        if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"{name}={value!r} is outside [0, 1].", hint=f"Give {name} as a fraction, e.g. 0.25.")
    if not isinstance(max_det, (int, np.integer)) or max_det < 1:
        raise UsageError(f"max_det={max_det!r} must be a positive integer.")


# ------------------------------------------------------------------ numpy (apps, references)

def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    half = boxes[..., 2:4] / 2
    return np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], -1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box of `a` [n, 4] with every box of `b` [m, 4]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), -1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), -1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Greedy NMS as ONNX defines it (a box goes when its IoU with a kept one is > iou); kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < max_det:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou_matrix(boxes[best], boxes[rest])[0] <= iou]
    return np.asarray(keep, dtype=np.int64)


def postprocess_head(head: np.ndarray, conf: float = 0.25, iou: float = 0.45, max_det: int = 100,
                     agnostic: bool = False, box_format: str = "xywh") -> dict:
    """Decode one yolo-format head [1, 4 + C, A] (or [4 + C, A]) and run NMS: xyxy boxes in input pixels, scores,
    classes, best first (what `append_nms` computes inside a model, without the padding)."""
    check_thresholds(conf, iou, max_det)
    head = np.asarray(head, np.float32)
    head = head[0] if head.ndim == 3 else head
    boxes = xywh_to_xyxy(head[:4].T) if check_box_format(box_format) == "xywh" else head[:4].T
    class_scores = head[4:].T
    classes = class_scores.argmax(1)
    scores = class_scores[np.arange(len(classes)), classes]
    kept = scores > conf
    boxes, scores, classes = boxes[kept], scores[kept], classes[kept]
    offset = 0.0 if agnostic else classes[:, None] * CLASS_OFFSET
    keep = nms(boxes + offset, scores, iou, max_det)
    return {"boxes": boxes[keep].astype(np.float32), "scores": scores[keep].astype(np.float32),
            "classes": classes[keep].astype(np.int64)}


def unpad(outputs: dict, names: dict | None = None) -> dict:
    """The valid rows of `append_nms`' fixed-size outputs (batch 1)."""
    names = names or {k: k for k in OUTPUT_NAMES}
    count = int(np.asarray(outputs[names["count"]]).reshape(-1)[0])
    return {"boxes": np.asarray(outputs[names["boxes"]], np.float32).reshape(-1, 4)[:count],
            "scores": np.asarray(outputs[names["scores"]], np.float32).reshape(-1)[:count],
            "classes": np.asarray(outputs[names["classes"]]).reshape(-1)[:count].astype(np.int64)}


# ------------------------------------------------------------------ ONNX: append decode + NMS

def append_nms(model, *, head: str | None = None, conf: float = 0.25, iou: float = 0.45, max_det: int = 100,
               agnostic: bool = False, box_format: str = "xywh"):
    """Append NMS with fixed-size outputs to a model ending in a yolo-format head; returns a new ModelProto.

    model: a ModelProto or path; head: the head output's name (default: the only output); box_format: xywh (centre,
    size) or xyxy (corners) in the head's first four rows. The result has outputs boxes/scores/classes/count (see the
    module docstring) and `edgekit.detections` metadata naming them.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.onnx_io import load_onnx

    check_thresholds(conf, iou, max_det)
    check_box_format(box_format)
    model = load_onnx(model) if not isinstance(model, onnx.ModelProto) else onnx.ModelProto.FromString(
        model.SerializeToString())
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    head = head or (graph.output[0].name if len(graph.output) == 1 else None)
    if head not in outputs:
        raise UsageError(f"Choose the detection head among the outputs {list(outputs)} (got {head!r}).",
                         hint="Pass head=NAME (`--nms-head NAME`).")
    if any(o.name in OUTPUT_NAMES for o in graph.output):
        raise UsageError(f"The model already has outputs named {[o.name for o in graph.output]}; NMS was appended "
                         "before, or an output uses one of the names it writes "
                         f"({', '.join(OUTPUT_NAMES)}).", hint="Append NMS to the model's detection head only once.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in outputs[head].type.tensor_type.shape.dim]
    if len(dims) != 3 or dims[0] != 1 or not dims[1] or not dims[2] or dims[1] < 5:
        raise UsageError(f"The head '{head}' has shape {dims}; a yolo-format head is [1, 4 + classes, anchors] with "
                         "static sizes.", hint="Export with a fixed input shape (batch 1).")
    channels, anchors = dims[1], dims[2]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        raise UsageError(f"The model uses opset {opset}; NonMaxSuppression with these inputs needs opset 11 or newer.",
                         hint="Re-export with --opset 13 or newer.")
    max_det = int(min(max_det, anchors))
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), f"nms/{name}"))
        return f"nms/{name}"

    def node(op, inputs, name, n_out=1, **attrs):
        outs = [f"nms/{name}"] if n_out == 1 else [f"nms/{name}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=f"nms/{name}", **attrs))
        return outs[0] if n_out == 1 else outs

    def slice_(x, starts, ends, axes, name):
        return node("Slice", [x, const(f"{name}_s", np.int64(starts)), const(f"{name}_e", np.int64(ends)),
                              const(f"{name}_a", np.int64(axes))], name)

    def unsqueeze(x, axes, name):
        if opset >= 13:
            return node("Unsqueeze", [x, const(f"{name}_axes", np.int64(axes))], name)
        return node("Unsqueeze", [x], name, axes=axes)

    def reduce_max(x, axis, name):
        if opset >= 18:
            return node("ReduceMax", [x, const(f"{name}_axes", np.int64([axis]))], name, keepdims=0)
        return node("ReduceMax", [x], name, axes=[axis], keepdims=0)

    rows = node("Transpose", [head], "rows", perm=[0, 2, 1])  # [1, A, 4 + C]
    box_rows = slice_(rows, [0], [4], [2], "box_rows")  # [1, A, 4] in the head's box format
    class_scores = slice_(rows, [4], [channels], [2], "class_scores")
    if box_format == "xywh":
        centers, sizes = slice_(box_rows, [0], [2], [2], "centers"), slice_(box_rows, [2], [4], [2], "sizes")
        half = node("Mul", [sizes, const("half", np.float32(0.5))], "half_sizes")
        boxes = node("Concat", [node("Sub", [centers, half], "top_left"), node("Add", [centers, half], "bottom_right")],
                     "xyxy", axis=2)  # [1, A, 4]
    else:
        boxes = box_rows
    scores = reduce_max(class_scores, 2, "best_score")  # [1, A]
    classes = node("ArgMax", [class_scores], "best_class", axis=2, keepdims=0)  # [1, A] int64
    nms_boxes = boxes
    if not agnostic:  # (one NMS over each anchor's best class, as Ultralytics' multi_label=False)
        offset = node("Mul", [node("Cast", [classes], "class_float", to=TensorProto.FLOAT),
                              const("class_offset", np.float32(CLASS_OFFSET))], "offset")
        nms_boxes = node("Add", [boxes, unsqueeze(offset, [2], "offset_column")], "offset_boxes")
    selected = node("NonMaxSuppression", [nms_boxes, unsqueeze(scores, [1], "nms_scores"),
                                          const("max_per_class", np.int64([max_det])), const("iou", np.float32([iou])),
                                          const("conf", np.float32([conf]))], "select")
    # Fixed-size outputs without slicing a run-time-sized axis (which TFLite tensors allocated up front cannot
    # express cheaply): mark the kept anchors in a mask over all A anchors, zero the others' scores, and TopK the
    # max_det best; TopK's order is NMS's (descending score). Integers travel as float (exact below 2**24).
    kept_index = node("Gather", [node("Cast", [selected], "selected_float", to=TensorProto.FLOAT),
                                 const("box_column", np.int64([2]))], "kept_index", axis=1)  # [K, 1]
    distance = node("Abs", [node("Sub", [kept_index, const("anchor_ids", np.arange(anchors, dtype=np.float32)[None])],
                                 "index_minus_anchor")], "index_distance")  # [K, A]: 0 where anchor is kept
    hits = node("Relu", [node("Sub", [const("one", np.float32(1)), distance], "closeness")], "hits")
    mask = reduce_max(node("Concat", [hits, const("no_hit", np.zeros((1, anchors), np.float32))], "hits_or_none",
                           axis=0), 0, "kept_mask")  # [A]; the zero row makes K = 0 well defined
    flat_scores = node("Gather", [scores, const("item", np.int64(0))], "flat_scores", axis=0)  # [A]
    masked = node("Mul", [flat_scores, mask], "masked_scores")
    out_scores, order = node("TopK", [masked, const("max_det", np.int64([max_det]))], "best", n_out=2, axis=0)
    valid = node("Cast", [node("Greater", [out_scores, const("zero", np.float32(0))], "is_kept")], "valid",
                 to=TensorProto.FLOAT)  # [max_det]: 1 for kept rows, 0 for padding

    def picked(x, name):
        return node("Gather", [node("Gather", [x, const(f"{name}_item", np.int64(0))], f"{name}_flat", axis=0), order],
                    f"{name}_picked", axis=0)

    out_boxes = node("Mul", [picked(boxes, "boxes"), unsqueeze(valid, [1], "valid_column")], "kept_boxes")
    class_float = picked(node("Cast", [classes], "class_as_float", to=TensorProto.FLOAT), "classes")
    padding = node("Sub", [const("one_", np.float32(1)), valid], "padding")
    out_classes = node("Sub", [node("Mul", [class_float, valid], "kept_classes"), padding],
                       "classes_or_minus_one")  # -1 on padding rows
    # every kept score is > conf >= 0 and padding is 0: the kept rows are those with a positive score
    kept = node("Cast", [valid], "kept_int", to=TensorProto.INT64)
    count = node("ReduceSum", [kept, const("count_axes", np.int64([0]))], "count_sum", keepdims=1) if opset >= 13 \
        else node("ReduceSum", [kept], "count_sum", axes=[0], keepdims=1)
    for name, value in (("boxes", out_boxes), ("scores", out_scores), ("classes", out_classes)):
        target = name if name != "classes" else "nms/classes_batched"
        nodes.append(helper.make_node("Unsqueeze", [value, const(f"{name}_batch", np.int64([0]))], [target],
                                      name=f"nms/{name}_out") if opset >= 13 else
                     helper.make_node("Unsqueeze", [value], [target], name=f"nms/{name}_out", axes=[0]))
    nodes.append(helper.make_node("Cast", ["nms/classes_batched"], ["classes"], name="nms/classes_int",
                                  to=TensorProto.INT64))
    nodes.append(helper.make_node("Identity", [count], ["count"], name="nms/count_out"))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, max_det, 4]),
                         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, max_det]),
                         helper.make_tensor_value_info("classes", TensorProto.INT64, [1, max_det]),
                         helper.make_tensor_value_info("count", TensorProto.INT64, [1])])
    meta = {"boxes": "boxes", "scores": "scores", "classes": "classes", "count": "count", "format": "xyxy",
            "conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic, "head_format": box_format}
    _set_meta(model, DETECTIONS_KEY, json.dumps(meta, sort_keys=True))
    _set_meta(model, HEAD_KEY, None)
    onnx.checker.check_model(model)
    return model


def mark_head(model, head: str, fmt: str = "yolo"):
    """Record in `model`'s metadata that output `head` is a detection head the app decodes (in place)."""
    _set_meta(model, HEAD_KEY, json.dumps({"output": head, "format": fmt}, sort_keys=True))
    return model


def _set_meta(model, key: str, value: str | None) -> None:
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    for p in kept:
        model.metadata_props.add(key=p.key, value=p.value)
    if value is not None:
        model.metadata_props.add(key=key, value=value)

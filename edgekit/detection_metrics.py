"""Detection metrics: how far two detectors agree box for box, and mAP@0.5 against labels (numpy only).

A detection set is a dict with boxes [n, 4] (xyxy), scores [n] and classes [n], per image. Agreement matches a
candidate's boxes to the reference's greedily by score (IoU >= 0.5, same class): precision = matched / candidate
count, recall = matched / reference count. mAP@0.5 is VOC-style all-point interpolated AP, averaged over the classes
that have labels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgekit.detection import iou_matrix


@dataclass
class DetectionAgreement:
    precision: float
    recall: float
    matched: int
    reference: int
    candidate: int
    mean_iou: float  # over the matched pairs

    def as_dict(self) -> dict:
        return asdict(self)


def _match(ref: dict, got: dict, threshold: float) -> list:
    """Greedy by candidate score: (candidate index, reference index, IoU) of each match."""
    ref_boxes, got_boxes = np.asarray(ref["boxes"]).reshape(-1, 4), np.asarray(got["boxes"]).reshape(-1, 4)
    if not len(ref_boxes) or not len(got_boxes):
        return []
    ious = iou_matrix(got_boxes, ref_boxes)
    same = np.asarray(got["classes"]).reshape(-1, 1) == np.asarray(ref["classes"]).reshape(1, -1)
    ious = np.where(same, ious, 0.0)
    taken, pairs = set(), []
    for g in np.argsort(-np.asarray(got.get("scores", np.ones(len(got_boxes)))), kind="stable"):
        for r in np.argsort(-ious[g], kind="stable"):
            if ious[g, r] < threshold:
                break
            if r not in taken:
                taken.add(r)
                pairs.append((int(g), int(r), float(ious[g, r])))
                break
    return pairs


def agreement(reference: list, candidate: list, iou: float = 0.5) -> DetectionAgreement:
    """Matched-box agreement of `candidate` with `reference` over images (lists of detection sets, or one set)."""
    if isinstance(reference, dict):
        reference, candidate = [reference], [candidate]
    matched = n_ref = n_got = 0
    ious = []
    for ref, got in zip(reference, candidate, strict=True):
        pairs = _match(ref, got, iou)
        matched += len(pairs)
        ious += [p[2] for p in pairs]
        n_ref += len(np.asarray(ref["boxes"]).reshape(-1, 4))
        n_got += len(np.asarray(got["boxes"]).reshape(-1, 4))
    return DetectionAgreement(matched / n_got if n_got else 1.0, matched / n_ref if n_ref else 1.0, matched, n_ref,
                              n_got, float(np.mean(ious)) if ious else 1.0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def map50(detections: list, labels: list, iou: float = 0.5) -> float:
    """mAP@`iou` of per-image detections against per-image labels (boxes, classes)."""
    classes = sorted({int(c) for lab in labels for c in np.asarray(lab["classes"]).reshape(-1)})
    aps = []
    for c in classes:
        records, total = [], 0
        for det, lab in zip(detections, labels, strict=True):
            lab_mask = np.asarray(lab["classes"]).reshape(-1) == c
            det_mask = np.asarray(det["classes"]).reshape(-1) == c
            total += int(lab_mask.sum())
            d = {k: np.asarray(det[k])[det_mask] if k != "boxes" else np.asarray(det[k]).reshape(-1, 4)[det_mask]
                 for k in ("boxes", "scores", "classes")}
            gt = {"boxes": np.asarray(lab["boxes"]).reshape(-1, 4)[lab_mask], "classes": np.full(lab_mask.sum(), c)}
            hits = {g for g, _, _ in _match(gt, d, iou)}
            records += [(float(s), g in hits) for g, s in enumerate(d["scores"])]
        if not total:
            continue
        records.sort(key=lambda r: -r[0])
        tp = np.cumsum([hit for _, hit in records]) if records else np.zeros(0)
        fp = np.cumsum([not hit for _, hit in records]) if records else np.zeros(0)
        aps.append(average_precision(tp / total, tp / np.maximum(tp + fp, 1)) if records else 0.0)
    return float(np.mean(aps)) if aps else 0.0


# ------------------------------------------------------------------ judging models whose outputs are detections

def detection_spec(metadata: dict | None, output_names) -> dict | None:
    """How a model's outputs read as detections, or None when they are not detections: "nms" (the fixed-size
    boxes/scores/classes/count of edgekit.detection.append_nms) or "head" (a yolo-format head that its metadata
    names with edgekit.detection.mark_head; an unmarked [1, C, A] tensor is not assumed to be boxes)."""
    import json

    from edgekit.detection import DETECTIONS_KEY, HEAD_KEY, OUTPUT_NAMES
    metadata, names = metadata or {}, set(output_names)

    def parsed(key):
        value = metadata.get(key)
        try:
            value = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    declared = {k: (parsed(DETECTIONS_KEY) or {}).get(k) for k in OUTPUT_NAMES}
    if all(v in names for v in declared.values()):
        return {"kind": "nms", "names": declared}
    if set(OUTPUT_NAMES) <= names:
        return {"kind": "nms", "names": {k: k for k in OUTPUT_NAMES}}
    head = parsed(HEAD_KEY)
    if head and head.get("output") in names:
        fmt = head.get("format", "yolo")
        return {"kind": "head", "output": head["output"], "box_format": "xyxy" if fmt == "xyxy" else "xywh"}
    return None


def to_detections(outputs: dict, spec: dict, conf: float = 0.25, iou: float = 0.45, max_det: int = 100) -> list:
    """Per-image detection sets from a batch of outputs (rows along axis 0, as evaluation concatenates them)."""
    from edgekit.detection import postprocess_head, unpad
    if spec["kind"] == "head":
        heads = np.asarray(outputs[spec["output"]], np.float32)
        return [postprocess_head(h, conf, iou, max_det, box_format=spec["box_format"]) for h in heads]
    names = spec["names"]
    counts = np.asarray(outputs[names["count"]]).reshape(-1)
    return [unpad({k: np.asarray(outputs[names[k]])[i:i + 1] if k != "count" else counts[i:i + 1]
                   for k in names}, None) for i in range(len(counts))]


def box_labels(array) -> list:
    """Labels with boxes as one padded array [N, M, 5] per image row (x1, y1, x2, y2, class; class < 0 pads) →
    per-image {boxes, classes}; None when `array` is not in that form."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] != 5:
        return None
    return [{"boxes": rows[rows[:, 4] >= 0, :4].astype(np.float32), "classes": rows[rows[:, 4] >= 0, 4].astype(np.int64)}
            for rows in array]


def padded_box_labels(labels: list, width: int | None = None) -> np.ndarray:
    """Per-image {boxes, classes} → one padded array [N, width, 5] (x1, y1, x2, y2, class; class -1 pads), the form
    evaluation files hold and `box_labels` reads back; width defaults to the most boxes in one image."""
    width = max([len(lab["boxes"]) for lab in labels] + [1]) if width is None else width
    out = np.full((len(labels), width, 5), -1, np.float32)
    for i, lab in enumerate(labels):
        n = len(lab["boxes"])
        if n > width:
            raise ValueError(f"image {i} has {n} boxes, more than the width {width}")
        out[i, :n, :4] = lab["boxes"]
        out[i, :n, 4] = lab["classes"]
    return out


def judge(reference: list, candidate: list, labels: list | None = None, iou: float = 0.5) -> dict:
    """Matched-box agreement of a candidate with the reference model (IoU >= `iou`, same class) and, with labels,
    both models' mAP@0.5: what compare, quantize and the pipeline report for detectors."""
    result = agreement(reference, candidate, iou).as_dict()
    result["images"] = len(reference)
    if labels is not None:
        result["map50"] = map50(candidate, labels)
        result["reference_map50"] = map50(reference, labels)
    return result


def renamed(spec: dict, names: dict) -> dict:
    """`spec` with its output names replaced through `names` (the pipeline keys outputs by position)."""
    if spec["kind"] == "head":
        return {**spec, "output": names[spec["output"]]}
    return {**spec, "names": {k: names[v] for k, v in spec["names"].items()}}


def variant_accuracy(spec: dict, reference: dict, candidate: dict, labels=None) -> dict:
    """A variant's accuracy as the pipeline ranks it: mAP@0.5 against labels with boxes ([N, M, 5]), else the F1 of
    its boxes matched to the float model's (1.0 = the same boxes); `delta` is value - float value."""
    ref, got = to_detections(reference, spec), to_detections(candidate, spec)
    labels = box_labels(labels)
    result = judge(ref, got, labels if labels is not None and len(labels) == len(ref) else None)
    acc = {"boxes": {k: result[k] for k in ("precision", "recall", "mean_iou", "matched", "reference", "candidate")}}
    if "map50" in result:
        acc.update(metric="mAP@0.5", value=result["map50"], float_value=result["reference_map50"])
    else:
        p, r = result["precision"], result["recall"]
        acc.update(metric="matched-box F1", value=2 * p * r / (p + r) if p + r else 0.0, float_value=1.0)
    acc["delta"] = acc["value"] - acc["float_value"]
    return acc

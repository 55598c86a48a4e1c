"""Judging a candidate against the float model: output agreement and task accuracy on evaluation data, and
latency measured side by side on this machine."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.metrics import diff, looks_like_class_scores


class NullProgress:
    """The progress interface the library reports through (the CLI draws rich progress bars)."""

    def start(self, label: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class Accuracy:
    samples: int
    metric: str  # accuracy | top1 | cosine
    drop: float  # how much worse than float, as a fraction (0.01 = 1 point)
    outputs: list[dict] = field(default_factory=list)
    float_accuracy: float | None = None
    accuracy: float | None = None

    def as_dict(self) -> dict:
        return {"samples": self.samples, "metric": self.metric, "drop": self.drop, "outputs": self.outputs,
                "float_accuracy": self.float_accuracy, "accuracy": self.accuracy}


class Evaluator:
    """Runs the float model once over the evaluation rows, then scores any candidate against it."""

    def __init__(self, float_bytes: bytes, source, infos, start: int, stop: int, batch: int,
                 progress: NullProgress | None = None, threads: int | None = None):
        from edgekit.quantize.calibration import iter_batches
        from edgekit.runtimes import load
        self.batches, self.labels = [], []
        self.threads = threads
        progress = progress or NullProgress()
        sess = load(float_bytes, runtime="onnxruntime", provider="cpu", threads=threads)
        self.output_names = [o.name for o in sess.outputs]
        ref: dict[str, list] = {n: [] for n in self.output_names}
        progress.start("Running the float model on the evaluation data", stop - start)
        for feeds, labels in iter_batches(source, infos, start, stop, batch):
            self.batches.append(feeds)
            if labels is not None:
                self.labels.append(labels)
            for k, v in sess.run(feeds).items():
                ref[k].append(v)
            progress.advance(len(next(iter(feeds.values()))))
        progress.done()
        self.reference = {k: np.concatenate(v) for k, v in ref.items() if v}
        self.label_array = np.concatenate(self.labels) if self.labels else None
        self.samples = sum(len(next(iter(f.values()))) for f in self.batches)
        self.scores_output = next((k for k, v in self.reference.items() if looks_like_class_scores(v)), None)
        self.detection = _detection_setup(sess.metadata, self.output_names, self.reference, self.label_array)
        if self.detection:  # a detector is judged by its boxes: mAP@0.5 with box labels, else agreement with float
            self.metric, self.float_accuracy = self.detection["metric"], self.detection.get("float_map50")
        elif self.label_array is not None and self.scores_output is not None:
            self.metric = "accuracy"
            self.float_accuracy = float(np.mean(self.reference[self.scores_output].argmax(1) == self.label_array))
        else:
            self.metric = "top1" if self.scores_output is not None else "cosine"
            self.float_accuracy = None

    def run(self, model_bytes: bytes) -> dict[str, np.ndarray]:
        from edgekit.runtimes import load
        sess = load(model_bytes, runtime="onnxruntime", provider="cpu", threads=self.threads)
        got: dict[str, list] = {n: [] for n in self.output_names}
        for feeds in self.batches:
            for k, v in sess.run(feeds).items():
                got[k].append(v)
        return {k: np.concatenate(v) for k, v in got.items() if v}

    def score(self, model_bytes: bytes) -> Accuracy:
        got = self.run(model_bytes)
        rows = []
        for name, ref in self.reference.items():
            d = diff(name, ref, got[name])
            rows.append({"output": name, "cosine": d.cosine, "max_abs": d.max_abs, "sqnr_db": d.sqnr_db,
                         "top1_agreement": d.top1_agreement, "nonfinite": d.nonfinite})
        acc = None
        if self.detection:
            from edgekit.detection_metrics import judge, to_detections
            d = self.detection
            j = judge(d["reference"], to_detections(got, d["spec"]), d["labels"])
            rows.append({"output": "matched boxes", **{k: v for k, v in j.items() if k != "reference"},
                         "reference_boxes": j["reference"]})
            if d["labels"] is not None:
                acc = j["map50"]
                drop = self.float_accuracy - acc
            else:
                drop = 1.0 - min(j["precision"], j["recall"])
        elif self.metric == "accuracy":
            acc = float(np.mean(got[self.scores_output].argmax(1) == self.label_array))
            drop = self.float_accuracy - acc
        elif self.metric == "top1":
            drop = 1.0 - min(r["top1_agreement"] for r in rows if r["top1_agreement"] is not None)
        else:
            drop = 1.0 - min(r["cosine"] for r in rows)
        if any(r.get("nonfinite") for r in rows):
            drop = max(drop, 1.0)
        return Accuracy(self.samples, self.metric, float(drop), rows, self.float_accuracy, acc)


def _detection_setup(metadata, output_names, reference: dict, label_array) -> dict | None:
    """For a model whose outputs are detections (edgekit.detection_metrics.detection_spec): the float model's boxes
    per image, the labels with boxes if the evaluation data has them ('labels' [N, M, 5]), and the metric."""
    from edgekit.detection_metrics import box_labels, detection_spec, map50, to_detections
    spec = detection_spec(metadata, output_names)
    if spec is None:
        return None
    boxes = to_detections(reference, spec)
    labels = box_labels(label_array)
    if labels is not None and len(labels) != len(boxes):
        labels = None
    setup = {"spec": spec, "reference": boxes, "labels": labels, "metric": "map50" if labels else "box_agreement"}
    if labels is not None:
        setup["float_map50"] = map50(boxes, labels)
    return setup


@dataclass
class Speed:
    float_p50_ms: float
    p50_ms: float

    @property
    def speedup(self) -> float:
        return self.float_p50_ms / self.p50_ms if self.p50_ms > 0 else float("inf")

    @property
    def slower(self) -> bool:
        return self.p50_ms >= self.float_p50_ms

    def as_dict(self) -> dict:
        return {"float_p50_ms": self.float_p50_ms, "p50_ms": self.p50_ms, "speedup": self.speedup,
                "slower_than_float": self.slower}


def compare_speed(float_bytes: bytes, candidate_bytes: bytes, feeds: dict, *, threads: int | None = None,
                  min_time: float = 0.25, rounds: int = 3) -> Speed:
    """p50 latency of both models, timed in alternating rounds so machine noise hits both alike."""
    from edgekit.bench import time_session
    from edgekit.runtimes import load
    ref = load(float_bytes, runtime="onnxruntime", provider="cpu", threads=threads)
    cand = load(candidate_bytes, runtime="onnxruntime", provider="cpu", threads=threads)
    a, b = [], []
    for _ in range(rounds):
        a.append(time_session(ref, feeds, min_time=min_time, warmup=3).p50)
        b.append(time_session(cand, feeds, min_time=min_time, warmup=3).p50)
    return Speed(float(np.median(a)), float(np.median(b)))

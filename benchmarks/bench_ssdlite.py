"""torchvision's SSDlite320-MobileNetV3-Large (random weights) with box decoding and NMS inside, ONNX Runtime vs the
compiled TFLite model: kept boxes matched at IoU >= 0.99, same count, same classes. Prints a table; never pass/fail.

The model ends before torchvision's postprocess (its NMS is a C op that does not load beside this machine's CPU torch):
backbone + SSDlite head, then the anchors' box coder (weights 10, 10, 5, 5, as torchvision's) and softmax scores
without the background class, as one xyxy head [1, 4 + 90, 3234] that `edgekit.detection.append_nms` finishes.
torchvision is not installed in the main environment (see benchmarks/coverage_models.py); run it from a venv:

    python -m venv --system-site-packages /work/tvenv && /work/tvenv/bin/pip install --no-deps 'torchvision==0.28.*'
    /work/tvenv/bin/python benchmarks/bench_ssdlite.py [--images 8] [--conf 0.05]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coverage_models import _torchvision  # noqa: E402  (the torchvision import workaround)

from edgekit import detection as det  # noqa: E402

SIZE = 320


class SSDliteHead(torch.nn.Module):
    """Normalized image [1, 3, 320, 320] → xyxy boxes and class scores, [1, 4 + classes - 1, anchors]."""

    def __init__(self, model):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        self.weights = model.box_coder.weights
        with torch.no_grad():
            from torchvision.models.detection.image_list import ImageList
            x = torch.zeros(1, 3, SIZE, SIZE)
            features = list(self.backbone(x).values())
            anchors = model.anchor_generator(ImageList(x, [(SIZE, SIZE)]), features)[0]  # [A, 4] xyxy
        self.register_buffer("anchor_centres", ((anchors[:, :2] + anchors[:, 2:]) / 2).T[None])  # [1, 2, A]
        self.register_buffer("anchor_sizes", (anchors[:, 2:] - anchors[:, :2]).T[None])  # [1, 2, A]

    def forward(self, image):
        out = self.head(list(self.backbone(image).values()))
        reg, logits = out["bbox_regression"].transpose(1, 2), out["cls_logits"].transpose(1, 2)  # [1, 4, A], [1, C, A]
        wx, wy, ww, wh = self.weights
        centres = reg[:, :2] / torch.tensor([wx, wy]).view(1, 2, 1) * self.anchor_sizes + self.anchor_centres
        clamp = math.log(1000.0 / 16)  # torchvision's bbox_xform_clip
        sizes = torch.exp(torch.clamp(reg[:, 2:] / torch.tensor([ww, wh]).view(1, 2, 1), max=clamp)) * self.anchor_sizes
        boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
        return torch.cat([boxes, logits.softmax(1)[:, 1:]], 1)


def build():
    """Random weights. Freshly initialised BatchNorm statistics (mean 0, variance 1) make the backbone's activations
    vanish, and then every class score is exactly 1/91 (all ties: nothing for NMS to decide); the statistics are
    re-estimated on 16 random images (the weights stay random) so scores spread out as a trained model's do."""
    models = _torchvision()
    torch.manual_seed(0)
    net = models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    model = SSDliteHead(net)
    model.train()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.momentum = None  # a plain average over the batches
        for seed in range(4):
            model(torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


#: an image's path to the normalized input the head was built for: pixels 0-255 → roughly N(0, 1)
DETECT_PREPROCESS = {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "layout": "NCHW"}


def detect_check(head_path: Path, with_nms, args, tmp: str) -> str:
    """`edgekit.load(...).detect(image)` on the head (NMS in numpy) and on the NMS-inside model, each as ONNX and as
    the TFLite file `edgekit.convert` writes: the same boxes (count, classes, IoU with ONNX Runtime's NMS-inside model)
    on a few random images."""
    import onnx

    import edgekit
    from edgekit.convert import convert
    work = Path(tmp)
    head = det.mark_head(onnx.load(str(head_path)), "head", "xyxy")
    onnx.save(head, str(work / "head_marked.onnx"))
    onnx.save(with_nms, str(work / "nms.onnx"))
    files = [work / "head_marked.onnx", work / "nms.onnx"]
    for f in list(files):
        convert(f, f.with_suffix(".tflite"), force=True)
        files.append(f.with_suffix(".tflite"))
    models = {f.name: edgekit.load(f, preprocess=DETECT_PREPROCESS, threads=2) for f in files}
    rng = np.random.default_rng(1)
    worst, same = 1.0, True
    for _ in range(3):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        found = {name: m.detect(image, conf=args.conf, iou=args.iou, max_det=args.max_det) for name, m in models.items()}
        want = found["nms.onnx"]
        for got in found.values():
            ok = len(got.boxes) == len(want.boxes) and np.array_equal(got.classes, want.classes)
            same &= bool(ok)
            if ok and len(want.boxes):
                worst = min(worst, float(np.diag(det.iou_matrix(got.boxes, want.boxes)).min()))
    for m in models.values():
        m.close()
    return (f"{', '.join(models)}: counts and classes equal {same}; worst matched IoU {worst:.5f} "
            f"({len(want.boxes)} boxes on the last image)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--conf", type=float, default=0.05, help="random weights: class scores stay near 1/90")
    parser.add_argument("--iou", type=float, default=0.45)
    parser.add_argument("--max-det", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from edgekit.converters.tflite import compile_onnx
    from edgekit.runtimes import load
    model = build()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ssdlite.onnx"
        torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["image"],
                          output_names=["head"], opset_version=17, dynamo=False)
        t0 = time.perf_counter()
        with_nms = det.append_nms(str(path), conf=args.conf, iou=args.iou, max_det=args.max_det, box_format="xyxy")
        compiled = compile_onnx(with_nms)
        compile_s = time.perf_counter() - t0
        ort = load(with_nms.SerializeToString(), runtime="onnxruntime", threads=2)
        head_ort = load(str(path), runtime="onnxruntime", threads=2)
        tfl = load(compiled.to_bytes(), runtime="litert", threads=2)
        head_tfl = load(compile_onnx(str(path)).to_bytes(), runtime="litert", threads=2)  # NMS in numpy instead
        rng = np.random.default_rng(0)
        rows, worst_iou, same = [], 1.0, True
        for i in range(args.images):
            x = rng.normal(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32)  # a normalized image's range
            want, got = det.unpad(ort.run({"image": x})), det.unpad(tfl.run({"image": x}))
            numpy_nms = det.postprocess_head(head_ort.run({"image": x})["head"], args.conf, args.iou, args.max_det,
                                             box_format="xyxy")
            tfl_numpy = det.postprocess_head(head_tfl.run({"image": x})["head"], args.conf, args.iou, args.max_det,
                                             box_format="xyxy")
            sets = (got, numpy_nms, tfl_numpy)
            n_same = all(len(d["boxes"]) == len(want["boxes"]) for d in sets)
            classes_same = n_same and all(np.array_equal(d["classes"], want["classes"]) for d in sets)
            ious = np.concatenate([np.diag(det.iou_matrix(d["boxes"], want["boxes"])) for d in sets]) \
                if n_same and len(want["boxes"]) else []
            worst_iou = min([worst_iou, *ious])
            same &= bool(n_same and classes_same)
            rows.append((i, len(want["boxes"]), len(got["boxes"]), len(numpy_nms["boxes"]), len(tfl_numpy["boxes"]),
                         classes_same, min(ious) if len(ious) else float("nan")))
        print(f"SSDlite320-MobileNetV3 (random weights), head {model(torch.zeros(1, 3, SIZE, SIZE)).shape[1:]} xyxy"
              f" → NMS inside; TFLite ops: NON_MAX_SUPPRESSION_V5 x{compiled.op_histogram.get('NON_MAX_SUPPRESSION_V5', 0)}, "
              f"{sum(compiled.op_histogram.values())} ops, compiled in {compile_s:.1f} s")
        print("kept boxes per image: NMS inside (ORT, TFLite) and NMS in numpy after the head (ORT, TFLite); "
              "min IoU of each with ORT's NMS-inside boxes, row by row")
        print(f"{'image':>5} {'ORT':>5} {'TFLite':>6} {'ORT+np':>6} {'TFL+np':>6} {'classes equal':>13} {'min IoU':>8}")
        for r in rows:
            print(f"{r[0]:5d} {r[1]:5d} {r[2]:6d} {r[3]:6d} {r[4]:6d} {str(r[5]):>13} {r[6]:8.5f}")
        print(f"all counts and classes equal: {same}; worst matched IoU {worst_iou:.5f}")
        print("detect() on the models as files (metadata carried by convert): " + detect_check(path, with_nms, args, tmp))
        x = rng.normal(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32)
        timing = {}
        for _ in range(3):  # interleaved rounds, medians
            for name, sess in (("ORT", ort), ("LiteRT", tfl)):
                for _ in range(5):
                    t = time.perf_counter()
                    sess.run({"image": x})
                    timing.setdefault(name, []).append(time.perf_counter() - t)
        print("latency with NMS inside, 2 threads, median of 15: " +
              ", ".join(f"{k} {1000 * np.median(v):.1f} ms" for k, v in timing.items()))
        for s in (ort, head_ort, tfl, head_tfl):
            s.close()


if __name__ == "__main__":
    main()

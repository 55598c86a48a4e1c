"""Workstation side of the detection example app: train the synthetic-shapes detector (and, with --segmenter, the
U-Net segmenter) for seconds, export, append decode + NMS, compile to .tflite, bundle, and write sample images.

    python examples/detect_app/build.py --out detect-build
    python examples/detect_app/build.py --out detect-build --segmenter --samples 6

Needs the workstation install (torch, onnx); the device side (draw.py) needs none of it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

LABELS = ["rectangle", "circle", "triangle"]
SAMPLE_SCALE = (3, 4)  # sample images are 192x256: each 64x64 scene scaled 3x down, 4x across (boxes follow)
PREPROCESS = {"kind": "image", "layout": "NCHW", "scale": 1 / 255, "resize": "64x64"}


def build(out: Path, *, steps: int = 250, samples: int = 4, segmenter: bool = False, seed: int = 0) -> dict:
    import torch
    from PIL import Image

    from edgekit import detection
    from edgekit.bundle import bundle
    from edgekit.converters.tflite import compile_onnx
    from edgekit.zoo import detection as zoo

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    images, labels = zoo.shapes_dataset(400, seed=seed)
    t0 = time.perf_counter()
    model = zoo.train(zoo.tiny_detector(), images, labels, steps=steps, batch=16, seed=seed)
    report["detector_train_s"] = round(time.perf_counter() - t0, 1)
    head = out / "detector_head.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(head), input_names=["image"],
                      output_names=["detections"], opset_version=17, dynamo=False)
    with_nms = detection.append_nms(str(head), conf=0.25, iou=0.45, max_det=20)
    (out / "detector.onnx").write_bytes(with_nms.SerializeToString())
    (out / "detector.tflite").write_bytes(compile_onnx(with_nms).to_bytes())
    for name in ("detector.onnx", "detector.tflite"):
        bundle(out / name, out / f"{Path(name).stem}-{Path(name).suffix[1:]}.ekb", preprocess=PREPROCESS,
                       labels=LABELS, force=True)
    if segmenter:
        from edgekit.zoo import segmentation as zseg
        seg_images, seg_masks = zseg.shapes_masks(400, seed=seed)
        unet = zseg.train(zseg.tiny_unet(), seg_images, seg_masks, seed=seed)
        torch.onnx.export(unet, (torch.zeros(1, 3, 64, 64),), str(out / "segmenter.onnx"), input_names=["image"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        (out / "segmenter.tflite").write_bytes(compile_onnx(str(out / "segmenter.onnx")).to_bytes())
    scenes, truths = zoo.shapes_dataset(samples, seed=seed + 1000)
    folder = out / "samples"
    folder.mkdir(exist_ok=True)
    sy, sx = SAMPLE_SCALE
    truth = {}
    for i, (scene, lab) in enumerate(zip(scenes, truths)):
        name = f"scene{i:02d}.png"
        Image.fromarray(np.repeat(np.repeat(scene, sy, 0), sx, 1)).save(folder / name)
        truth[name] = {"boxes": (lab["boxes"] * np.float32([sx, sy, sx, sy])).round(2).tolist(),
                       "labels": [LABELS[c] for c in lab["classes"]]}
    (out / "samples_truth.json").write_text(json.dumps(truth, indent=1))
    report["files"] = sorted(p.name for p in out.iterdir())
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("detect-build"))
    parser.add_argument("--steps", type=int, default=250, help="detector training steps (default 250)")
    parser.add_argument("--samples", type=int, default=4, help="sample images to write (default 4)")
    parser.add_argument("--segmenter", action="store_true", help="also train and compile the U-Net segmenter")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.out, steps=args.steps, samples=args.samples, segmenter=args.segmenter)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

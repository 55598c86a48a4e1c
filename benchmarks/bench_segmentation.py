"""The synthetic-shapes segmenter (zoo:segmenter): mIoU on held-out images through `model.segment()`, pixel agreement
with float ONNX and latency, for float ONNX, INT8 ONNX (QDQ), float TFLite and INT8 TFLite. Prints a table; never
pass/fail.

    python benchmarks/bench_segmentation.py [--steps 200] [--images 100]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import edgekit
from edgekit import segmentation as seg
from edgekit.bench import time_session
from edgekit.zoo import segmentation as zoo

CLASSES = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, masks = zoo.shapes_masks(400, seed=0)
    t0 = time.perf_counter()
    model = zoo.train(zoo.tiny_unet(), images, masks, steps=args.steps)
    train_s = time.perf_counter() - t0
    test_images, test_masks = zoo.shapes_masks(args.images, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(tmp / "unet.onnx"), input_names=["image"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        np.savez(tmp / "calib.npz", image=zoo.to_input(images[:64]).numpy())
        from edgekit.quantize import Calibration, SpeedPolicy, quantize
        # accuracy is the point here; the latency column shows the speed (ORT's QDQ convs at this toy size can lose)
        quantize(tmp / "unet.onnx", tmp / "unet_int8.onnx", calibration=Calibration(str(tmp / "calib.npz")),
                 speed=SpeedPolicy(allow_slower=True))
        from edgekit.converters.tflite import compile_onnx
        variants = {}
        for name, label in (("unet", "float"), ("unet_int8", "INT8")):
            variants[f"ONNX {label}"] = tmp / f"{name}.onnx"
            (tmp / f"{name}.tflite").write_bytes(compile_onnx(str(tmp / f"{name}.onnx")).to_bytes())
            variants[f"TFLite {label}"] = tmp / f"{name}.tflite"
        print(f"trained {args.steps} steps in {train_s:.1f} s; {args.images} held-out 64x64 images, 4 classes")
        print(f"{'variant':12} {'mIoU':>6} {'per class (bg, rect, circle, tri)':>34} {'same px':>8} {'ms':>7} "
              f"{'KB':>5}")
        reference = None
        for label, path in variants.items():
            with edgekit.load(path, threads=1) as app:
                found = [app.segment(image) for image in test_images]
                x = zoo.to_input(test_images[:1]).numpy()
                ms = time_session(app.session, {"image": x}, runs=200).p50
            reference = reference or found
            matrix = sum(seg.confusion(f, t, CLASSES) for f, t in zip(found, test_masks))
            value, per_class = seg.miou(matrix)
            same = np.mean([np.mean(f == r) for f, r in zip(found, reference)])
            print(f"{label:12} {value:6.4f} {' '.join(f'{v:.3f}' for v in per_class):>34} {same:8.4f} {ms:7.3f} "
                  f"{path.stat().st_size / 1024:5.0f}")


if __name__ == "__main__":
    main()

"""The synthetic-shapes detector (zoo:detector) through the pipeline: mAP@0.5 on held-out images and latency with NMS
inside, for float ONNX, INT8 ONNX (QDQ), float TFLite and INT8 TFLite. Prints a table; never pass/fail.

    python benchmarks/bench_detection.py [--steps 250] [--images 200]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgekit import detection as det
from edgekit import detection_metrics as dm
from edgekit.zoo import detection as zoo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = zoo.shapes_dataset(400, seed=0)
    t0 = time.perf_counter()
    model = zoo.train(zoo.tiny_detector(), images, labels, steps=args.steps, batch=16)
    train_s = time.perf_counter() - t0
    test_images, test_labels = zoo.shapes_dataset(args.images, seed=1)
    xs = zoo.to_input(test_images).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(tmp / "head.onnx"), input_names=["image"],
                          output_names=["detections"], opset_version=17, dynamo=False)
        np.savez(tmp / "calib.npz", image=zoo.to_input(images[:64]).numpy())
        from edgekit.quantize import quantize
        quantize(tmp / "head.onnx", tmp / "head_int8.onnx", calib=str(tmp / "calib.npz"))
        from edgekit.converters.tflite import compile_onnx
        from edgekit import runtimes
        variants = {}
        for name in ("head", "head_int8"):
            with_nms = det.append_nms(str(tmp / f"{name}.onnx"), conf=0.25, iou=0.45, max_det=100)
            path = tmp / f"{name}_nms.onnx"
            path.write_bytes(with_nms.SerializeToString())
            variants[f"ONNX {'INT8' if 'int8' in name else 'float'}"] = path
            tfl = tmp / f"{name}_nms.tflite"
            tfl.write_bytes(compile_onnx(with_nms).to_bytes())
            variants[f"TFLite {'INT8' if 'int8' in name else 'float'}"] = tfl
        reference = None
        print(f"trained {args.steps} steps in {train_s:.1f} s; {args.images} held-out images")
        print(f"{'variant':14} {'mAP@0.5':>8} {'vs float ONNX P/R':>18} {'ms/image':>9} {'KB':>6}")
        for label, path in variants.items():
            session = runtimes.load(str(path), threads=1)
            found, times = [], []
            for x in xs:
                t = time.perf_counter()
                out = session.run({"image": x[None]})
                times.append(time.perf_counter() - t)
                found.append(det.unpad(out))
            reference = reference or found
            agree = dm.agreement(reference, found)
            print(f"{label:14} {dm.map50(found, test_labels):8.4f} {agree.precision:8.3f}/{agree.recall:.3f} "
                  f"{1000 * np.median(times):9.3f} {path.stat().st_size / 1024:6.0f}")
            session.close()


if __name__ == "__main__":
    main()

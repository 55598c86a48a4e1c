"""The synthetic-shapes detector (zoo:detector) through the pipeline: mAP@0.5 on held-out images and latency with NMS
inside (ONNX Runtime and LiteRT, float and INT8, one thread, interleaved rounds, medians), for float ONNX, INT8 ONNX
(QDQ), float TFLite and INT8 TFLite. Prints a table; never pass/fail.

    python benchmarks/bench_detection.py [--steps 250] [--images 200] [--rounds 5]
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
    parser.add_argument("--max-drop", type=float, default=0.02, help="quantize's budget, in mAP@0.5 points")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds of 20 runs per variant")
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
        # the head is marked as one (as `edgekit export zoo:detector` does), so quantize judges it by mAP@0.5 on
        # labelled images that are neither the test set nor the calibration set, and keeps layers in float until
        # the drop is within --max-drop
        import onnx
        onnx.save(det.mark_head(onnx.load(str(tmp / "head.onnx")), "detections"), str(tmp / "head.onnx"))
        np.savez(tmp / "calib.npz", image=zoo.to_input(images[:64]).numpy())
        eval_images, eval_labels = zoo.shapes_dataset(100, seed=2)
        np.savez(tmp / "eval.npz", image=zoo.to_input(eval_images).numpy(), labels=dm.padded_box_labels(eval_labels))
        from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
        t0 = time.perf_counter()
        q = quantize(tmp / "head.onnx", tmp / "head_int8.onnx", calibration=Calibration(str(tmp / "calib.npz")),
                     gate=AccuracyGate(eval_data=str(tmp / "eval.npz"), max_drop=args.max_drop),
                     speed=SpeedPolicy("off"))
        print(f"quantize --max-drop {args.max_drop}: {q.accuracy.metric} {q.accuracy.float_accuracy:.4f} -> "
              f"{q.accuracy.accuracy:.4f} on 100 labelled images, {len(q.plan.float_tensors) + len(q.plan.keep_float)} "
              f"tensor(s)/node(s) kept in float, {time.perf_counter() - t0:.0f} s")
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
        print(f"trained {args.steps} steps in {train_s:.1f} s; {args.images} held-out images; NMS inside every model")
        sessions = {label: runtimes.load(str(path), threads=1) for label, path in variants.items()}
        results = {}
        for label, session in sessions.items():
            found = [det.unpad(session.run({"image": x[None]})) for x in xs]
            reference = reference or found
            results[label] = (dm.map50(found, test_labels), dm.agreement(reference, found))
        # latency side by side: interleaved rounds over the variants, one image, 1 thread, medians
        times = {label: [] for label in sessions}
        x = xs[:1]
        for _ in range(args.rounds):
            for label, session in sessions.items():
                for _ in range(20):
                    t = time.perf_counter()
                    session.run({"image": x})
                    times[label].append(time.perf_counter() - t)
        print(f"{'variant':14} {'mAP@0.5':>8} {'vs float ONNX P/R':>18} {'ms/image':>9} {'KB':>6}")
        for label, session in sessions.items():
            score, agree = results[label]
            print(f"{label:14} {score:8.4f} {agree.precision:8.3f}/{agree.recall:.3f} "
                  f"{1000 * np.median(times[label]):9.3f} {variants[label].stat().st_size / 1024:6.0f}")
            session.close()

if __name__ == "__main__":
    main()

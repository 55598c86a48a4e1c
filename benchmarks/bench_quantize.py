"""Float vs plain ONNX Runtime static QDQ vs edgekit's speed-aware quantization, on zoo CNNs at 224x224.

    python benchmarks/bench_quantize.py [--quick] [--models resnet,mobilenet] [--threads N]

Prints a markdown table: p50 latency of each variant (timed in alternating rounds on this machine) and the
agreement of each quantized model with float (top-1 agreement and cosine of the logits). Calibration uses a
few fixed random images so the script runs in minutes: agreement figures are therefore about the mechanics,
not real-data accuracy (tests/quantize shows accuracy on real digits).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and shorter timing (a smoke run)")
    ap.add_argument("--models", default="resnet,mobilenet")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from edgekit.bench import time_session
    from edgekit.converters.torch_export import export
    from edgekit.envinfo import cpu_model
    from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
    from edgekit.quantize.hardware import detect_isa
    from edgekit.runtimes import load
    n_calib, n_eval = (4, 4) if args.quick else (16, 16)
    min_time, rounds = (0.3, 2) if args.quick else (1.0, 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            fp = tmp / f"{name}.onnx"
            export(f"zoo:{name}", fp)
            rng = np.random.default_rng(0)
            images = rng.standard_normal((n_calib + n_eval, 3, 224, 224)).astype(np.float32)
            calib = tmp / f"{name}-calib.npz"
            np.savez(calib, image=images[:n_calib])
            evalset = tmp / f"{name}-eval.npz"
            np.savez(evalset, image=images[n_calib:])
            plain = tmp / f"{name}-ort.onnx"
            _plain_ort_qdq(fp, plain, images[:n_calib], tmp)
            ek = tmp / f"{name}-edgekit.onnx"
            result = quantize(fp, ek, calibration=Calibration(str(calib)), gate=AccuracyGate(eval_data=str(evalset)),
                              speed=SpeedPolicy(threads=args.threads, allow_slower=True))
            sessions = {k: load(p, threads=args.threads) for k, p in (("float", fp), ("ort", plain), ("edgekit", ek))}
            feeds = {"image": images[:1]}
            p50 = {k: [] for k in sessions}
            for _ in range(rounds):
                for k, s in sessions.items():
                    p50[k].append(time_session(s, feeds, min_time=min_time).p50)
            p50 = {k: float(np.median(v)) for k, v in p50.items()}
            agree = {k: _agreement(sessions["float"], sessions[k], images[n_calib:]) for k in ("ort", "edgekit")}
            rows.append((name, p50, agree, result))
    print(f"\nCPU: {cpu_model()} ({detect_isa()}); threads: {args.threads or 'runtime default'}; "
          f"calibration: {n_calib} fixed random images, agreement on {n_eval} others (not real data).\n")
    print("| model | float p50 ms | ORT static QDQ p50 ms | edgekit p50 ms | edgekit vs float | edgekit vs ORT "
          "| ORT top-1 / cosine | edgekit top-1 / cosine | edgekit kept in float |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for name, p, a, r in rows:
        kept = ", ".join(t["keep_float"] for t in r.speed_trials if t["kept"] and t["keep_float"] != "(none)")
        print(f"| {name} | {p['float']:.2f} | {p['ort']:.2f} | {p['edgekit']:.2f} | {p['float'] / p['edgekit']:.2f}x "
              f"| {p['ort'] / p['edgekit']:.2f}x | {a['ort'][0]:.0%} / {a['ort'][1]:.4f} "
              f"| {a['edgekit'][0]:.0%} / {a['edgekit'][1]:.4f} | {kept or '-'} |")
    print("\nORT static QDQ = quantize_static(per_channel=True) with its defaults (S8S8, MinMax); edgekit picks "
          "types for this CPU and keeps slower-when-quantized layer types in float.")
    return 0


def _plain_ort_qdq(src: Path, dst: Path, images: np.ndarray, tmp: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quant_pre_process, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"image": images[i:i + 1]} for i in range(len(images)))

        def get_next(self):
            return next(self.it, None)

    logging.getLogger().setLevel(logging.ERROR)
    pre = tmp / (src.stem + "-pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)


def _agreement(ref, got, images) -> tuple[float, float]:
    from edgekit.metrics import diff
    a = np.concatenate([ref.run({"image": images[i:i + 1]})["logits"] for i in range(len(images))])
    b = np.concatenate([got.run({"image": images[i:i + 1]})["logits"] for i in range(len(images))])
    d = diff("logits", a, b)
    return d.top1_agreement, d.cosine


if __name__ == "__main__":
    sys.exit(main())

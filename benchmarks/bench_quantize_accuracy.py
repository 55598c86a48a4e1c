"""Accuracy techniques for static INT8 on digits models with an injected outlier channel (x1000 between two layers,
float unchanged): float accuracy, plain INT8, + equalization, + bias correction, + SmoothQuant, and the tensor
search alone, each with its p50 latency on this machine (batch 1, one thread).

    python benchmarks/bench_quantize_accuracy.py [--models cnn,mlp,transformer] [--work DIR]

Models are trained on scikit-learn's digits by tests/quantize/outlier_models.py (seeded) and cached in --work.
Accuracy is on the 360 held-out digits; latency from edgekit.bench.time_session.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quantize"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from edgekit.quantize.options import Techniques  # noqa: E402 (after the sys.path line above, like the rest)

OFF = Techniques(equalize=False, smoothquant=False, bias_correction=False)
ROWS = [("plain INT8", OFF, None),  # (label, techniques, max_drop)
        ("+ equalization", replace(OFF, equalize=True), None),
        ("+ bias correction", replace(OFF, equalize=True, bias_correction=True), None),
        ("+ SmoothQuant", Techniques(equalize=True, bias_correction=True, smoothquant=True), None),
        ("search only (--max-drop 0.01)", OFF, 0.01),
        ("auto (--max-drop 0.01)", Techniques(), 0.01)]


def p50_ms(path, feeds) -> float:
    from edgekit.bench import time_session
    from edgekit.runtimes import load
    with load(str(path), runtime="onnxruntime", provider="cpu", threads=1) as sess:
        return time_session(sess, feeds, min_time=0.5, warmup=10).p50


def main() -> None:
    import numpy as np

    from edgekit.errors import GateError
    from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
    from outlier_models import MODELS
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cnn,mlp,transformer")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "edgekit-bench-quant-acc"))
    args = ap.parse_args()
    work = Path(args.work)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"{'model':12} {'variant':30} {'accuracy':>9} {'drop':>7} {'p50 ms':>8}  how")
    for name in args.models.split(","):
        root = work / name
        onnx_path = root / f"outlier_{name}.onnx"
        data = root / f"outlier_{name}.npz"
        if not (onnx_path.exists() and data.exists()):
            MODELS[name](root)
        npz = np.load(data)
        key = next(k for k in npz.files if k != "labels")
        feeds = {key: npz[key][:1]}
        float_acc = None
        for label, techniques, max_drop in ROWS:
            out = root / f"q-{label.split()[-1].strip('()-.')}.onnx"
            try:
                r = quantize(onnx_path, out, calibration=Calibration(str(data)), techniques=techniques,
                             gate=AccuracyGate(eval_fraction=0.6, max_drop=max_drop), speed=SpeedPolicy("off"),
                             force=True)
            except GateError as exc:
                print(f"{name:12} {label:30} {'-':>9} {'-':>7} {'-':>8}  gate failed: {exc.message[:80]}")
                continue
            if float_acc is None:
                float_acc = r.accuracy.float_accuracy
                print(f"{name:12} {'float':30} {float_acc:9.4f} {0:7.4f} {p50_ms(onnx_path, feeds):8.4f}")
            how = "; ".join(f"{t['technique']} {t['before']:.3f}→{t['after']:.3f}"
                            + ("" if t["applied"] else " (not kept)")
                            for t in r.techniques if t["after"] is not None)
            print(f"{name:12} {label:30} {r.accuracy.accuracy:9.4f} {r.accuracy.drop:7.4f} {p50_ms(out, feeds):8.4f}"
                  f"  {how or '-'}", flush=True)


if __name__ == "__main__":
    main()

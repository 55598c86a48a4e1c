"""TFLite INT8 benchmark: the same network as LiteRT float, LiteRT INT8 (compiled from edgekit's static QDQ model)
and ONNX Runtime on that QDQ model — p50 latency (2 threads, interleaved rounds), model sizes, agreement.

    python benchmarks/bench_tflite_int8.py [--quick] [--models resnet,mobilenet] [--runs 40] [--samples 32]

Calibration and agreement use seeded random images (no labelled data ships with edgekit): agreement is the
top-1 match of the INT8 TFLite model with ORT running the QDQ model, and with the float model. Targets from
issue 7: LiteRT INT8 >= 3x faster than LiteRT float on ResNet-18, >= 1.4x on MobileNetV2.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.timing import interleaved_p50_ms

TARGETS = {"resnet": 3.0, "mobilenet": 1.4}


def top1(sess, xs, layout=None) -> np.ndarray:
    from edgekit.convert import to_layout
    name = sess.inputs[0].name
    return np.asarray([next(iter(sess.run({name: to_layout(x[None], layout)}).values())).reshape(-1).argmax()
                       for x in xs])


def bench(name: str, size: int, runs: int, warmup: int, samples: int, workdir: Path) -> dict:
    from edgekit import runtimes
    from edgekit.convert import to_layout
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.torch_export import export
    from edgekit.quantize import Calibration, SpeedPolicy, quantize

    shape = f"1x3x{size}x{size}"
    float_path, qdq_path = workdir / f"{name}.onnx", workdir / f"{name}_qdq.onnx"
    export(f"zoo:{name}", float_path, input_shapes=[shape])
    rng = np.random.default_rng(0)
    calib = workdir / f"{name}_calib.npz"
    input_name = _input_name(float_path)
    np.savez(calib, **{input_name: rng.standard_normal((32, 3, size, size)).astype(np.float32)})
    quantize(float_path, qdq_path, mode="static", calibration=Calibration(str(calib)), speed=SpeedPolicy("off"))
    start = time.perf_counter()
    int8 = compile_onnx(qdq_path)
    int8_s = time.perf_counter() - start
    float_data, int8_data = compile_onnx(float_path).to_bytes(), int8.to_bytes()
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    xs = rng.standard_normal((samples, 3, size, size)).astype(np.float32)
    with runtimes.load(float_data, runtime="litert", threads=2) as lf, \
            runtimes.load(int8_data, runtime="litert", threads=2) as l8, \
            runtimes.load(qdq_path, runtime="onnxruntime", threads=2) as oq:
        sessions = {"litert_float": lf, "litert_int8": l8, "ort_qdq": oq}
        feeds = {k: {s.inputs[0].name: to_layout(x, s.inputs[0].layout)} for k, s in sessions.items()}
        ms = interleaved_p50_ms(sessions, feeds, runs, warmup)
        t_int8, t_qdq, t_float = top1(l8, xs, l8.inputs[0].layout), top1(oq, xs), top1(lf, xs, lf.inputs[0].layout)
    return {"model": name, "shape": shape, **ms, "speedup": ms["litert_float"] / ms["litert_int8"],
            "target": TARGETS.get(name), "float_mb": len(float_data) / 1e6, "int8_mb": len(int8_data) / 1e6,
            "qdq_mb": qdq_path.stat().st_size / 1e6, "agree_qdq": float((t_int8 == t_qdq).mean()),
            "agree_float": float((t_int8 == t_float).mean()), "compile_s": int8_s,
            "islands": len(int8.quantization.get("islands", []))}


def _input_name(path) -> str:
    import onnx
    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="96x96 inputs, few runs and samples (a smoke run)")
    ap.add_argument("--models", default="resnet,mobilenet")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--samples", type=int, default=32, help="random images for top-1 agreement")
    args = ap.parse_args()
    size = 96 if args.quick else 224
    runs, warmup, samples = (5, 2, 8) if args.quick else (args.runs, 5, args.samples)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(bench(name, size, runs, warmup, samples, Path(tmp)))
    print(f"\nTFLite INT8 — {platform.processor() or platform.machine()}, 2 threads, p50 of {runs} runs "
          f"(interleaved), agreement on {samples} random images\n")
    print("| model | input | LiteRT float (ms) | LiteRT INT8 (ms) | ORT QDQ (ms) | INT8 speedup (target) | "
          "float / INT8 / QDQ (MB) | top-1 = ORT QDQ | top-1 = float | float islands |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        target = f" (≥{r['target']:g}×)" if r["target"] else ""
        print(f"| {r['model']} | {r['shape']} | {r['litert_float']:.2f} | {r['litert_int8']:.2f} | {r['ort_qdq']:.2f} | "
              f"{r['speedup']:.2f}×{target} | {r['float_mb']:.1f} / {r['int8_mb']:.1f} / {r['qdq_mb']:.1f} | "
              f"{r['agree_qdq']:.0%} | {r['agree_float']:.0%} | {r['islands']} |")


if __name__ == "__main__":
    main()

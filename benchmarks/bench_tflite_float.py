"""Float TFLite compiler benchmark: conversion time, .tflite size, LiteRT vs ONNX Runtime latency (p50, 2 threads).

    python benchmarks/bench_tflite_float.py [--quick] [--models resnet,mobilenet] [--runs 50]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def p50(session, feeds, runs: int, warmup: int) -> float:
    """Median ms over `runs`, with edgekit bench's own timing loop (the runtime's bare run call)."""
    from edgekit.bench import time_session
    return time_session(session, feeds, runs=runs, warmup=warmup).p50


def bench(name: str, shape: str, runs: int, warmup: int, workdir: Path) -> dict:
    from edgekit import runtimes
    from edgekit.convert import to_layout
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.torch_export import export

    onnx_path = workdir / f"{name}.onnx"
    export(f"zoo:{name}", onnx_path, input_shapes=[shape])
    start = time.perf_counter()
    compiled = compile_onnx(onnx_path)
    data = compiled.to_bytes()
    seconds = time.perf_counter() - start
    x = np.random.default_rng(0).standard_normal([int(d) for d in shape.split("x")]).astype(np.float32)
    with runtimes.load(onnx_path, runtime="onnxruntime", threads=2) as ort_s, \
            runtimes.load(data, runtime="litert", threads=2) as lite:
        ort_ms = p50(ort_s, {ort_s.inputs[0].name: x}, runs, warmup)
        lite_ms = p50(lite, {lite.inputs[0].name: to_layout(x, lite.inputs[0].layout)}, runs, warmup)
    return {"model": name, "shape": shape, "convert_s": seconds, "size_mb": len(data) / 1e6, "litert_ms": lite_ms,
            "ort_ms": ort_ms, "ratio": lite_ms / ort_ms, "ops": sum(compiled.op_histogram.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs and few runs (a smoke run)")
    ap.add_argument("--models", default="resnet,mobilenet")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    shape = "1x3x64x64" if args.quick else "1x3x224x224"
    runs, warmup = (5, 2) if args.quick else (args.runs, 10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(bench(name, shape, runs, warmup, Path(tmp)))
    print(f"\nTFLite float compiler — {platform.processor() or platform.machine()}, 2 threads, p50 of {runs} runs\n")
    print("| model | input | convert (s) | .tflite (MB) | ops | LiteRT p50 (ms) | ORT p50 (ms) | LiteRT/ORT |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['shape']} | {r['convert_s']:.2f} | {r['size_mb']:.1f} | {r['ops']} | "
              f"{r['litert_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()

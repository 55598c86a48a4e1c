"""Classic ImageNet CNNs through the TFLite compiler: conversion time, .tflite size, TRANSPOSE count, LiteRT vs
ONNX Runtime latency (p50, 2 threads), and ShuffleNet's channel shuffle lowered as TRANSPOSE vs GATHER.

    python benchmarks/bench_classic_cnns.py [--quick] [--models alexnet,vgg11,...] [--runs 30]

The architectures are the plain-PyTorch definitions in tests/converters/tflite/classic_cnns.py (full size,
224x224; --quick uses the small test variants at their test inputs and few runs).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parents[1] / "tests" / "converters" / "tflite"
sys.path.insert(0, str(MODELS_DIR))
from classic_cnns import ARCHITECTURES  # noqa: E402


def p50(path_or_bytes, runtime: str, x: np.ndarray, runs: int, warmup: int) -> float:
    from edgekit import runtimes
    from edgekit.bench import time_session
    from edgekit.convert import to_layout

    with runtimes.load(path_or_bytes, runtime=runtime, threads=2) as session:
        info = session.inputs[0]
        stats = time_session(session, {info.name: to_layout(x, info.layout)}, runs=runs, warmup=warmup)
    return stats.p50


def bench(name: str, quick: bool, runs: int, warmup: int, workdir: Path) -> tuple[dict, Path, np.ndarray]:
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.torch_export import export

    small, test_shape, full = ARCHITECTURES[name]
    factory, shape = (small, test_shape) if quick else (full, "1x3x224x224")
    onnx_path = workdir / f"{name}.onnx"
    export(f"{MODELS_DIR / 'classic_cnns.py'}:{factory}", onnx_path, input_shapes=[shape], exporter="dynamo")
    start = time.perf_counter()
    compiled = compile_onnx(onnx_path)
    data = compiled.to_bytes()
    seconds = time.perf_counter() - start
    x = np.random.default_rng(0).standard_normal([int(d) for d in shape.split("x")]).astype(np.float32)
    lite_ms = p50(data, "litert", x, runs, warmup)
    ort_ms = p50(onnx_path, "onnxruntime", x, runs, warmup)
    ops = compiled.op_histogram
    return ({"model": factory, "shape": shape, "convert_s": seconds, "size_mb": len(data) / 1e6, "ops": sum(ops.values()),
             "transposes": ops.get("TRANSPOSE", 0), "litert_ms": lite_ms, "ort_ms": ort_ms, "ratio": lite_ms / ort_ms},
            onnx_path, x)


def shuffle_variants(onnx_path: Path, x: np.ndarray, runs: int, warmup: int) -> list:
    """LiteRT p50 of the same ShuffleNet with the channel shuffle lowered each way."""
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.tflite.lowerings import fused

    rows, kept = [], fused.SHUFFLE_WITH
    try:
        for how in ("transpose", "gather"):
            fused.SHUFFLE_WITH = how
            compiled = compile_onnx(onnx_path)
            ops = compiled.op_histogram
            rows.append({"how": how, "transposes": ops.get("TRANSPOSE", 0), "gathers": ops.get("GATHER", 0),
                         "litert_ms": p50(compiled.to_bytes(), "litert", x, runs, warmup)})
    finally:
        fused.SHUFFLE_WITH = kept
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small test variants and inputs, few runs (a smoke run)")
    ap.add_argument("--models", default=",".join(ARCHITECTURES))
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    runs, warmup = (5, 2) if args.quick else (args.runs, 5)
    rows, shuffle = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name} ...", file=sys.stderr, flush=True)
            row, onnx_path, x = bench(name, args.quick, runs, warmup, Path(tmp))
            rows.append(row)
            if name.startswith("shufflenet"):
                shuffle = shuffle_variants(onnx_path, x, runs, warmup)
            onnx_path.unlink()
    print(f"\nClassic CNNs, TFLite float compiler — {platform.processor() or platform.machine()}, "
          f"2 threads, p50 of {runs} runs\n")
    print("| model | input | convert (s) | .tflite (MB) | ops | TRANSPOSE | LiteRT p50 (ms) | ORT p50 (ms) | LiteRT/ORT |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['shape']} | {r['convert_s']:.2f} | {r['size_mb']:.1f} | {r['ops']} | "
              f"{r['transposes']} | {r['litert_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f} |")
    if shuffle:
        print("\nShuffleNet channel shuffle lowering (LiteRT, same model)\n")
        print("| shuffle as | TRANSPOSE | GATHER | LiteRT p50 (ms) |")
        print("| --- | ---: | ---: | ---: |")
        for r in shuffle:
            print(f"| {r['how']} | {r['transposes']} | {r['gathers']} | {r['litert_ms']:.2f} |")


if __name__ == "__main__":
    main()

"""Sequence-model TFLite benchmark: LSTM and transformer zoo models at two lengths — conversion time, op count,
LiteRT vs ONNX Runtime latency (p50, 2 threads).

    python benchmarks/bench_tflite_sequence.py [--quick] [--models lstm,gru,transformer] [--runs 200]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

#: model -> the input shapes it is exported at (sequence length varies)
SHAPES = {"lstm": ("1x16x8", "1x64x8"), "gru": ("1x16x8", "1x64x8"), "rnn": ("1x16x8", "1x64x8"),
          "transformer": ("1x16", "1x64")}


def p50(session, feeds, runs: int, warmup: int) -> float:
    """Median ms over `runs`, with edgekit bench's own timing loop (the runtime's bare run call)."""
    from edgekit.bench import time_session
    return time_session(session, feeds, runs=runs, warmup=warmup).p50


def bench(name: str, shape: str, runs: int, warmup: int, workdir: Path) -> dict:
    from edgekit import runtimes
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.torch_export import export
    from edgekit.inputs import random_inputs

    onnx_path = workdir / f"{name}_{shape}.onnx"
    export(f"zoo:{name}", onnx_path, input_shapes=[shape])
    start = time.perf_counter()
    compiled = compile_onnx(onnx_path)
    data = compiled.to_bytes()
    seconds = time.perf_counter() - start
    with runtimes.load(onnx_path, runtime="onnxruntime", threads=2) as ort_s, \
            runtimes.load(data, runtime="litert", threads=2) as lite:
        feeds = random_inputs(ort_s.inputs, seed=0)  # token ids are valid indices, floats N(0, 1)
        ort_ms = p50(ort_s, feeds, runs, warmup)
        lite_ms = p50(lite, feeds, runs, warmup)
    return {"model": name, "shape": shape, "convert_s": seconds, "size_mb": len(data) / 1e6, "litert_ms": lite_ms,
            "ort_ms": ort_ms, "ratio": lite_ms / ort_ms, "ops": sum(compiled.op_histogram.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the short length only and few runs (a smoke run)")
    ap.add_argument("--models", default="lstm,transformer")
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    runs, warmup = (10, 3) if args.quick else (args.runs, 20)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for shape in SHAPES[name][:1] if args.quick else SHAPES[name]:
                rows.append(bench(name, shape, runs, warmup, Path(tmp)))
    print(f"\nTFLite sequence models — {platform.processor() or platform.machine()}, 2 threads, p50 of {runs} runs\n")
    print("| model | input | convert (s) | .tflite (MB) | ops | LiteRT p50 (ms) | ORT p50 (ms) | LiteRT/ORT |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['shape']} | {r['convert_s']:.2f} | {r['size_mb']:.2f} | {r['ops']} | "
              f"{r['litert_ms']:.3f} | {r['ort_ms']:.3f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()

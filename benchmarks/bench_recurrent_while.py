"""Recurrent layers, unrolled vs WHILE loop: LiteRT latency (p50, 2 threads, interleaved rounds) of one LSTM and one
GRU compiled both ways at 16/64/256/1024 steps (--hidden for the width). It decides recurrent.UNROLL_MAX_STEPS and
UNROLL_MAX_WEIGHT_BYTES: where the unrolled form is still the faster one (the loop pays a WHILE iteration, GATHER and
DYNAMIC_UPDATE_SLICE per step; the unrolled form pays a packed copy of the recurrent weights per step, cache misses
once those outgrow the cache, model size and compile time).

    python benchmarks/bench_recurrent_while.py [--quick] [--steps 16,64,256,1024] [--hidden 32] [--runs 60]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from edgekit.timing import interleaved_p50_ms

GATES = {"LSTM": 4, "GRU": 3}


def model(op: str, steps: int, features: int, hidden: int):
    """One forward `op` over [steps, 1, features], seeded weights, outputs Y and Y_h."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    g = GATES[op]
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in
             (("w", (1, g * hidden, features)), ("r", (1, g * hidden, hidden)), ("b", (1, 2 * g * hidden)))]
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    node = helper.make_node(op, ["x", "w", "r", "b"], ["y", "yh"], hidden_size=hidden, **extra)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 [steps, 1, features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [steps, 1, 1, hidden]),
                               helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, 1, hidden])], inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def compiled(onnx_model, looped: bool) -> tuple[bytes, float]:
    """The .tflite bytes with the form forced (UNROLL_MAX_STEPS 0 or unbounded), and the compile seconds."""
    from edgekit.converters.tflite import compile_onnx
    from edgekit.converters.tflite.lowerings import recurrent
    kept = recurrent.UNROLL_MAX_STEPS, recurrent.UNROLL_MAX_WEIGHT_BYTES
    recurrent.UNROLL_MAX_STEPS = recurrent.UNROLL_MAX_WEIGHT_BYTES = 0 if looped else 1 << 60
    try:
        start = time.perf_counter()
        data = compile_onnx(onnx_model).to_bytes()
        return data, time.perf_counter() - start
    finally:
        recurrent.UNROLL_MAX_STEPS, recurrent.UNROLL_MAX_WEIGHT_BYTES = kept


def bench(op: str, steps: int, features: int, hidden: int, runs: int, warmup: int) -> dict:
    from edgekit import runtimes
    onnx_model = model(op, steps, features, hidden)
    unrolled, unrolled_s = compiled(onnx_model, looped=False)
    looped, looped_s = compiled(onnx_model, looped=True)
    feeds = {"x": np.random.default_rng(1).standard_normal((steps, 1, features)).astype(np.float32)}
    with runtimes.load(unrolled, runtime="litert", threads=2) as u, runtimes.load(looped, runtime="litert",
                                                                                  threads=2) as w:
        a, b = u.run(feeds), w.run(feeds)
        agree = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
        ms = interleaved_p50_ms({"unrolled": u, "while": w}, {"unrolled": feeds, "while": feeds}, runs, warmup)
    return {"op": op, "steps": steps, "unrolled_ms": ms["unrolled"], "while_ms": ms["while"],
            "unrolled_mb": len(unrolled) / 1e6, "while_mb": len(looped) / 1e6, "unrolled_s": unrolled_s,
            "while_s": looped_s, "max_diff": agree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 and 64 steps, few runs (a smoke run)")
    ap.add_argument("--steps", default="16,64,256,1024")
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    steps = [16, 64] if args.quick else [int(s) for s in args.steps.split(",")]
    runs, warmup = (10, 2) if args.quick else (args.runs, 5)
    rows = [bench(op, n, args.features, args.hidden, runs, warmup) for op in GATES for n in steps]
    print(f"\nRecurrent unrolled vs WHILE — {platform.processor() or platform.machine()}, LiteRT 2 threads, p50 of "
          f"{runs} runs (interleaved), batch 1, {args.features} features, hidden {args.hidden}\n")
    print("| op | steps | unrolled (ms) | WHILE (ms) | WHILE / unrolled | .tflite unrolled / WHILE (MB) | "
          "compile unrolled / WHILE (s) | max |Δ| |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['op']} | {r['steps']} | {r['unrolled_ms']:.3f} | {r['while_ms']:.3f} | "
              f"{r['while_ms'] / r['unrolled_ms']:.2f}× | {r['unrolled_mb']:.2f} / {r['while_mb']:.2f} | "
              f"{r['unrolled_s']:.1f} / {r['while_s']:.1f} | {r['max_diff']:.1g} |")


if __name__ == "__main__":
    main()

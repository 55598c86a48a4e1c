"""Dynamic token length vs a fixed-128 model: a BERT-style encoder (2 layers, hidden 64) converted once with a
dynamic token axis runs each sentence at its own length; the fixed model must be fed every sentence padded to 128.
Two dynamic forms: batch and tokens both dynamic (its attention reshapes take run-time shapes, which XNNPACK does
not delegate: 5 XNNPACK partitions), and tokens only (constant shapes with one -1: one partition, as fixed).
LiteRT, batch 1; medians of interleaved rounds (the two models alternate, so load drifts hit both). With
--threads 1 it also gives each call's CPU time (time.thread_time: all of LiteRT's work runs on the calling thread),
which other processes' load does not inflate the way it inflates wall time on a shared 2-core machine.
--no-xnnpack runs LiteRT's builtin kernels only (is the gap the delegate's?).

    python benchmarks/bench_dynamic_tokens.py [--runs 200] [--threads 1] [--no-xnnpack] [--workdir DIR] [--quick]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "tests" / "converters" / "tflite" / "dynamic_models.py"
TOKENS = (8, 16, 32, 64, 128)
FIXED = 128


#: the models compared: dynamic batch and tokens; dynamic tokens only (batch 1); fixed at FIXED tokens
KINDS = ("dyn", "tok", "fixed")


def build(workdir: Path) -> dict[str, Path]:
    """{kind: .tflite} for KINDS, all from the same seeded weights, each validated by edgekit convert."""
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    inputs = ("input_ids", "attention_mask")
    axes = {"dyn": [f"{n}:{d}={label}" for n in inputs for d, label in ((0, "batch"), (1, "tokens"))],
            "tok": [f"{n}:1=tokens" for n in inputs], "fixed": []}
    paths = {}
    for kind in KINDS:
        # dynamic ones exported at 16 tokens: export's second validation size (about twice that) stays within 128
        tokens = FIXED if kind == "fixed" else 16
        export(f"{MODELS}:tiny_bert", workdir / f"{kind}.onnx", dynamic_axes=axes[kind], force=True,
               input_shapes=[f"{n}=1x{tokens}:int64" for n in inputs])
        convert(workdir / f"{kind}.onnx", workdir / f"{kind}.tflite", force=True)
        paths[kind] = workdir / f"{kind}.tflite"
    return paths


def feeds(tokens: int, length: int, rng) -> dict:
    """One sentence of `tokens` ids, padded to `length` with mask 0 (ids 0) where length > tokens."""
    ids = np.zeros((1, length), np.int32)
    ids[0, :tokens] = rng.integers(1, 512, tokens)
    mask = np.zeros((1, length), np.int32)
    mask[0, :tokens] = 1
    return {"input_ids": ids, "attention_mask": mask}


def interleaved(sessions: dict, tokens: int, runs: int, warmup: int) -> dict[str, tuple[float, float]]:
    """{kind: (median wall ms, median CPU ms of the calling thread)} over `runs` rounds of one call to each model in
    turn (each resized once for this length, outside the timing; the fixed one fed the sentence padded)."""
    runners = {}
    for kind, session in sessions.items():
        rng = np.random.default_rng(tokens)  # the same sentence for every model
        runners[kind] = session.runner(session.prepare(feeds(tokens, FIXED if kind == "fixed" else tokens, rng)))
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    wall, cpu = {k: [] for k in runners}, {k: [] for k in runners}
    for _ in range(runs):
        for kind, fn in runners.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            wall[kind].append((time.perf_counter() - start) * 1e3)
            cpu[kind].append((time.thread_time() - start_cpu) * 1e3)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in runners}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="build the models here, or reuse the ones an earlier run built")
    ap.add_argument("--no-xnnpack", action="store_true", help="LiteRT's builtin kernels only")
    ap.add_argument("--quick", action="store_true", help="few runs (a smoke run)")
    args = ap.parse_args()
    runs, warmup = (10, 3) if args.quick else (args.runs, 20)
    from edgekit import runtimes
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        built = {kind: workdir / f"{kind}.tflite" for kind in KINDS}
        paths = built if args.workdir and all(p.exists() for p in built.values()) else build(workdir)
        opts = {"runtime": "litert", "threads": args.threads, "xnnpack": not args.no_xnnpack}
        sessions = {kind: runtimes.load(str(path), **opts) for kind, path in paths.items()}
        try:
            rows = [(tokens, interleaved(sessions, tokens, runs, warmup)) for tokens in TOKENS]
        finally:
            for session in sessions.values():
                session.close()
    kernels = "builtin kernels" if args.no_xnnpack else "XNNPACK"
    print(f"\nDynamic tokens vs fixed {FIXED} (padded) — BERT 2 layers, hidden 64, batch 1 — "
          f"{platform.machine()}, LiteRT {args.threads} thread(s), {kernels}, median of {runs} interleaved runs\n")
    cpu = args.threads == 1  # with more threads the calling thread's CPU time misses the pool's work
    cols = ["dynamic batch+tokens", "dynamic tokens", f"fixed-{FIXED}, padded"]
    head = [f"{c} (ms)" for c in cols] + ["speedup"] + ([f"{c} CPU (ms)" for c in cols] if cpu else [])
    print("| tokens | " + " | ".join(head) + " |")
    print("|" + " ---: |" * (len(head) + 1))
    for tokens, r in rows:
        cells = [f"{r[k][0]:.3f}" for k in KINDS] + [f"{r['fixed'][0] / r['dyn'][0]:.2f}×"]
        cells += [f"{r[k][1]:.3f}" for k in KINDS] if cpu else []
        print(f"| {tokens} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

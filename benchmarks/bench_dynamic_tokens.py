"""Dynamic token length vs a fixed-128 model: a BERT-style encoder (2 layers, hidden 64) converted once with a
dynamic token axis runs each sentence at its own length; the fixed model must be fed every sentence padded to 128.
LiteRT, 2 threads, batch 1; medians of interleaved rounds (the two models alternate, so load drifts hit both).

    python benchmarks/bench_dynamic_tokens.py [--runs 200] [--quick]
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


def build(workdir: Path) -> tuple[Path, Path]:
    """(dynamic .tflite, fixed-128 .tflite), both from the same seeded weights, each validated by edgekit convert."""
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    axes = [f"{n}:{d}={label}" for n in ("input_ids", "attention_mask") for d, label in ((0, "batch"), (1, "tokens"))]
    def shapes(tokens):
        return [f"input_ids=1x{tokens}:int64", f"attention_mask=1x{tokens}:int64"]
    # exported at 16 tokens: export's second validation size (about twice that) stays within 128 positions
    export(f"{MODELS}:tiny_bert", workdir / "dyn.onnx", input_shapes=shapes(16), dynamic_axes=axes, force=True)
    export(f"{MODELS}:tiny_bert", workdir / "fixed.onnx", input_shapes=shapes(FIXED), force=True)
    convert(workdir / "dyn.onnx", workdir / "dyn.tflite", force=True)
    convert(workdir / "fixed.onnx", workdir / "fixed.tflite", force=True)
    return workdir / "dyn.tflite", workdir / "fixed.tflite"


def feeds(tokens: int, length: int, rng) -> dict:
    """One sentence of `tokens` ids, padded to `length` with mask 0 (ids 0) where length > tokens."""
    ids = np.zeros((1, length), np.int32)
    ids[0, :tokens] = rng.integers(1, 512, tokens)
    mask = np.zeros((1, length), np.int32)
    mask[0, :tokens] = 1
    return {"input_ids": ids, "attention_mask": mask}


def interleaved(dyn, fixed, tokens: int, runs: int, warmup: int) -> tuple[float, float]:
    """Median ms of each model over `runs` alternating calls (resized once for this length, outside the timing)."""
    rng = np.random.default_rng(tokens)
    run_dyn = dyn.runner(dyn.prepare(feeds(tokens, tokens, rng)))
    run_fixed = fixed.runner(fixed.prepare(feeds(tokens, FIXED, rng)))
    for _ in range(warmup):
        run_dyn(), run_fixed()
    times = {"dyn": [], "fixed": []}
    for _ in range(runs):
        for key, fn in (("dyn", run_dyn), ("fixed", run_fixed)):
            start = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - start) * 1e3)
    return float(np.median(times["dyn"])), float(np.median(times["fixed"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="few runs (a smoke run)")
    args = ap.parse_args()
    runs, warmup = (10, 3) if args.quick else (args.runs, 20)
    from edgekit import runtimes
    with tempfile.TemporaryDirectory() as tmp:
        dyn_path, fixed_path = build(Path(tmp))
        rows = []
        with runtimes.load(str(dyn_path), runtime="litert", threads=2) as dyn, \
                runtimes.load(str(fixed_path), runtime="litert", threads=2) as fixed:
            for tokens in TOKENS:
                rows.append((tokens, *interleaved(dyn, fixed, tokens, runs, warmup)))
    print(f"\nDynamic tokens vs fixed {FIXED} (padded) — BERT 2 layers, hidden 64, batch 1 — "
          f"{platform.machine()}, LiteRT 2 threads, median of {runs} interleaved runs\n")
    print(f"| tokens | dynamic model (ms) | fixed-{FIXED} model, padded (ms) | speedup |")
    print("| ---: | ---: | ---: | ---: |")
    for tokens, d, f in rows:
        print(f"| {tokens} | {d:.3f} | {f:.3f} | {f / d:.2f}× |")


if __name__ == "__main__":
    main()

"""What the quantizer's amplification limit buys and costs: static INT8 of three coverage transformers with
normalisations allowed to amplify one input step into 2 output steps (session 4's limit) and into 1 (AMPLIFY_STEPS),
each compiled to TFLite and judged by convert's own gate; LiteRT INT8 latency of both, interleaved.

    python benchmarks/bench_amplify_threshold.py [--models hf_bert,hf_segformer,hf_wav2vec2] [--rounds 5]

The limit is a module default of edgekit.quantize.amplifiers, not a user option; this script wraps the measurement
to compare the two values side by side.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import coverage  # noqa: E402  (benchmarks/ on sys.path)
import coverage_models  # noqa: E402

LIMITS = (2.0, 1.0)


def _quantize_at(limit: float, src: Path, dst: Path, calib: Path):
    from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, amplifiers, quantize
    measure = amplifiers.amplified_inputs

    def at_limit(*args, **kwargs):
        return measure(*args, **{**kwargs, "threshold": limit})
    amplifiers.amplified_inputs = at_limit
    try:
        return quantize(src, dst, mode="static", calibration=Calibration(str(calib)), speed=SpeedPolicy("off"),
                        gate=AccuracyGate(max_eval=coverage.EVAL_SAMPLES), force=True)
    finally:
        amplifiers.amplified_inputs = measure


def _convert(src: Path, dst: Path) -> dict:
    from edgekit.convert import convert
    from edgekit.errors import ValidationError
    try:
        result = convert(src, dst, force=True, keep_invalid=True)  # a refused model is written too, to time it
    except ValidationError as exc:
        result = exc.result
    off = (result.quantization or {}).get("steps_off") or {}
    return {"passed": result.passed, "steps_off": max(off.values(), default=float("nan")),
            "cosine": min(o["cosine"] for o in result.outputs)}


def run(name: str, rounds: int) -> list[dict]:
    from edgekit import runtimes
    from edgekit.bench import time_session
    model = coverage_models.MODELS[name]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        coverage._export(model, work)
        coverage._optimize(model, work)
        calib = work / "calibration.npz"
        np.savez(calib, **coverage.sample_inputs(model, coverage.CALIBRATION_SAMPLES, seed=0))
        rows = []
        for limit in LIMITS:
            q = _quantize_at(limit, work / coverage.FILES["optimize"], work / f"int8_{limit:g}.onnx", calib)
            row = {"model": name, "limit": limit, "float_tensors": len(q.plan.float_tensors),
                   **_convert(work / f"int8_{limit:g}.onnx", work / f"int8_{limit:g}.tflite")}
            rows.append(row)
        feeds = {k: v[:1] for k, v in coverage.sample_inputs(model, 1, seed=1).items()}
        sessions = {r["limit"]: runtimes.load(work / f"int8_{r['limit']:g}.tflite", runtime="litert", threads=2)
                    for r in rows}
        times = {limit: [] for limit in sessions}
        for _ in range(rounds):  # interleaved: the VM's load drifts
            for limit, session in sessions.items():
                times[limit].append(time_session(session, feeds, min_time=0.5, warmup=3, time_limit=5.0).p50)
        for r in rows:
            r["p50_ms"] = float(np.median(times[r["limit"]]))
        return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="hf_bert,hf_segformer,hf_wav2vec2")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    print("| model | limit (output steps per input step) | tensors kept float | INT8 gate | steps off | cosine "
          "| LiteRT INT8 p50 (2 threads) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for name in args.models.split(","):
        for r in run(name, args.rounds):
            print(f"| {r['model']} | {r['limit']:g} | {r['float_tensors']} | {'pass' if r['passed'] else 'refused'} | "
                  f"{r['steps_off']:.1f} | {r['cosine']:.4f} | {r['p50_ms']:.3f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

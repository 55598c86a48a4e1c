"""How much does edgekit's timing add? edgekit bench's loop vs a bare loop of the runtime's own run call.

For each runtime (ONNX Runtime `sess.run`; LiteRT `set_tensor` + `invoke` + `get_tensor`) and zoo model
(ResNet-18, MobileNetV2 at 1x3x224x224), one session is timed alternately (A/B/A/B, cancelling drift) by
`edgekit.bench.time_session` (what `edgekit bench` runs in its worker) and by a hand-written perf_counter loop.
The p50s should agree within 3%. LiteRT needs .tflite files from `edgekit convert`; when that fails the rows
say LiteRT was skipped and why.

    python benchmarks/bench_overhead.py            # full run (a few minutes)
    python benchmarks/bench_overhead.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("resnet", "mobilenet")
THRESHOLD = 0.03


def export_models(workdir: Path) -> dict[str, Path]:
    from edgekit.converters.torch_export import export
    paths = {}
    for name in MODELS:
        path = workdir / f"{name}.onnx"
        export(f"zoo:{name}", path, input_shapes=["1x3x224x224"])
        paths[name] = path
    return paths


def convert_to_tflite(onnx_path: Path) -> tuple[Path | None, str]:
    """Run `edgekit convert`; (path, "") on success, (None, reason) otherwise."""
    out = onnx_path.with_suffix(".tflite")
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "convert", str(onnx_path), "-o", str(out)],
                          capture_output=True, text=True)
    if proc.returncode == 0 and out.exists():
        return out, ""
    reason = " ".join((proc.stderr or proc.stdout).split())[-300:] or f"exit status {proc.returncode}"
    return None, f"`edgekit convert` failed (exit {proc.returncode}): {reason}"


def bare_loop(session, feeds, runs: int) -> list[int]:
    """The runtime's own run call in a plain perf_counter loop, nothing of edgekit in between."""
    clock = time.perf_counter_ns
    samples = []
    if session.runtime == "onnxruntime":
        sess, names = session.native, [o.name for o in session.outputs]
        for _ in range(runs):
            t0 = clock()
            sess.run(names, feeds)
            samples.append(clock() - t0)
    else:
        interp = session.native
        ins = [(d["index"], feeds[d["name"]]) for d in interp.get_input_details()]
        outs = [d["index"] for d in interp.get_output_details()]
        for _ in range(runs):
            t0 = clock()
            for idx, arr in ins:
                interp.set_tensor(idx, arr)
            interp.invoke()
            for idx in outs:
                interp.get_tensor(idx)
            samples.append(clock() - t0)
    return samples


def measure(path: Path, rounds: int, runs: int, threads: int) -> dict:
    import edgekit.runtimes as runtimes
    from edgekit.bench import time_session
    from edgekit.inputs import random_inputs

    with runtimes.load(path, threads=threads) as session:
        feeds = {i.name: np.ascontiguousarray(a.astype(i.dtype))
                 for i, a in zip(session.inputs, random_inputs(session.inputs, seed=0).values())}
        bare_loop(session, feeds, 5)  # warm both paths up before any timing counts
        edgekit_ms, bare_rounds = [], []
        for _ in range(rounds):  # A/B/A/B in short blocks, each after one untimed run, so drift hits both alike
            edgekit_ms += time_session(session, feeds, runs=runs, warmup=0).samples_ms  # its first call is untimed
            bare_rounds.append([s / 1e6 for s in bare_loop(session, feeds, runs + 1)[1:]])
        bare_ms = [v for r in bare_rounds for v in r]
        # the noise floor: the bare loop against itself (odd vs even blocks)
        odd = [v for r in bare_rounds[1::2] for v in r]
        even = [v for r in bare_rounds[0::2] for v in r]
        return {"runtime": session.runtime, "edgekit_p50": float(np.median(edgekit_ms)),
                "bare_p50": float(np.median(bare_ms)), "n": len(edgekit_ms),
                "noise": abs(float(np.median(odd)) / float(np.median(even)) - 1) if odd and even else float("nan")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs, for a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: usable cores)")
    args = parser.parse_args(argv)
    from edgekit import envinfo
    threads = args.threads or envinfo.usable_cores()
    rounds, runs = (4, 2) if args.quick else (80, 3)

    rows, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="edgekit-overhead-") as tmp:
        models = export_models(Path(tmp))
        for name, onnx_path in models.items():
            targets = [("onnxruntime", onnx_path)]
            tfl, reason = convert_to_tflite(onnx_path)
            if tfl is None:
                skipped.append(f"LiteRT on {name} skipped: {reason}")
            else:
                targets.append(("litert", tfl))
            for runtime, path in targets:
                r = measure(path, rounds, runs, threads)
                diff = r["edgekit_p50"] / r["bare_p50"] - 1
                rows.append((name, runtime, r["n"], r["bare_p50"], r["edgekit_p50"], diff, r["noise"]))

    print(f"## edgekit bench timing overhead ({envinfo.summary(envinfo.fingerprint())}; threads {threads})\n")
    print("| model | runtime | samples each | bare loop p50 ms | edgekit p50 ms | difference | within 3% "
          "| noise floor (bare vs bare) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, runtime, n, bare, ek, diff, noise in rows:
        print(f"| {name} | {runtime} | {n} | {bare:.3f} | {ek:.3f} | {diff:+.2%} | "
              f"{'yes' if abs(diff) <= THRESHOLD else 'NO'} | {noise:.2%} |")
    for line in skipped:
        print(f"\n{line}")
    if args.quick:
        print("\n(--quick: few samples; differences are noise-dominated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

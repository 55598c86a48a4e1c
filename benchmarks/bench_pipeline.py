"""Wall-clock time of `edgekit pipeline` end to end (every variant) on the LeNet-style CNN trained on digits and
on the ResNet-18-style zoo model, with each variant's status. Usage: python benchmarks/bench_pipeline.py [--quick]
(--quick: LeNet only). Prints a markdown table; nothing here is pass/fail.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def digits_project(root: Path) -> Path:
    """Train LeNet on digits (a few seconds), write weights, calibration and labelled eval sets, and a config."""
    from safetensors.torch import save_file
    spec = importlib.util.spec_from_file_location("digits", ROOT / "tests" / "quantize" / "conftest.py")
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    model, x, y = digits.train_lenet_digits()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "lenet.safetensors"))
    np.savez(root / "calib.npz", image=x[:200])
    np.savez(root / "eval.npz", image=x[-digits.HELD_OUT:], labels=y[-digits.HELD_OUT:])
    (root / "lenet.toml").write_text('[model]\nspec = "zoo:lenet"\nweights = "lenet.safetensors"\n'
                                     '[data]\ncalibration = "calib.npz"\neval = "eval.npz"\neval_samples = 360\n'
                                     '[bench]\nthreads = [2]\n')
    return root / "lenet.toml"


def run(source: str, out: Path, overrides=None) -> tuple[float, dict]:
    from edgekit.pipeline import pipeline
    t0 = time.perf_counter()
    report = pipeline(source, out, overrides=overrides)
    return time.perf_counter() - t0, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows.append(("LeNet on digits (trained, real calibration and labels)", *run(str(digits_project(tmp)), tmp / "lenet")))
        if not args.quick:
            rows.append(("ResNet-18-style zoo model, 1x3x224x224 (random calibration)",
                         *run("zoo:resnet", tmp / "resnet", {"threads": [2]})))
    print(f"Machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores\n")
    print("| pipeline | elapsed (s) | best | variants |")
    print("| --- | ---: | --- | --- |")
    for name, elapsed, report in rows:
        statuses = ", ".join(f"{r['variant']}: {r['status']}" for r in report["rows"])
        print(f"| {name} | {elapsed:.0f} | {report['best']} | {statuses} |")
    for name, _, report in rows:
        print(f"\n{name}:\n")
        print("| variant | p50 ms | speedup | metric | value | Δ |")
        print("| --- | ---: | ---: | --- | ---: | ---: |")
        for r in report["rows"]:
            acc = r.get("accuracy") or {}
            fmt = lambda v, f: f.format(v) if v is not None else "–"  # noqa: E731
            print(f"| {r['variant']} | {fmt(r.get('p50_ms'), '{:.3f}')} | {fmt(r.get('speedup'), '{:.2f}×')} | "
                  f"{acc.get('metric', '–')} | {fmt(acc.get('value'), '{:.4f}')} | {fmt(acc.get('delta'), '{:+.4f}')} |")


if __name__ == "__main__":
    main()

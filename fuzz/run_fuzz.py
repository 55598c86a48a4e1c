"""A longer fuzz run of the hardening properties: mutated ONNX and TFLite files through inspect, convert and
the runtime loaders. Usage: python fuzz/run_fuzz.py [--examples N]  (default 2000 per property).

It runs tests/hardening/test_fuzz.py with EDGEKIT_FUZZ_EXAMPLES=N and prints inputs tried and failures found.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=2000, help="mutated files per property (ONNX, TFLite)")
    args = parser.parse_args()
    env = {**os.environ, "EDGEKIT_FUZZ_EXAMPLES": str(args.examples)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                           str(ROOT / "tests" / "hardening" / "test_fuzz.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    failed = proc.returncode != 0
    print("| property | inputs tried | failures (crashes or non-edgekit errors) |")
    print("| --- | ---: | ---: |")
    for prop in ("mutated ONNX → inspect, load+run, convert", "mutated TFLite → inspect, load+run"):
        print(f"| {prop} | {args.examples} | {'see below' if failed else 0} |")
    print(f"\n{2 * args.examples} inputs in {elapsed:.0f} s; pytest exit code {proc.returncode}.")
    if failed:
        print(proc.stdout[-5000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

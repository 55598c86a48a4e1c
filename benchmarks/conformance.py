"""ONNX's backend node tests through the TFLite compiler: per op type, how many direct tests pass, are refused (with
the reasons) or fail (wrong values, errors, crashes, hangs), in the frozen form (constant operands as initializers) and
untouched.

    python benchmarks/conformance.py [--ops Conv,Resize] [--json results.json] [--jobs 2] [--reasons]

The totals are what the README quotes. Runs every direct test of the installed onnx package (about 1,400 over 197
op types for onnx 1.23), each in a forked child, so an abort inside LiteRT is one `crash` row.
"""
from __future__ import annotations

import argparse
import collections
import json
import platform
import time
from dataclasses import asdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="comma-separated op types (default: all)")
    parser.add_argument("--json", help="write every result here")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reasons", action="store_true", help="list the distinct refusal reasons per op")
    args = parser.parse_args()

    import onnx

    from edgekit.converters.tflite import conformance
    from edgekit.converters.tflite.registry import onnx_ops

    cases = conformance.direct_cases()
    if args.ops:
        wanted = set(args.ops.split(","))
        cases = [c for c in cases if conformance.op_type_of(c) in wanted]
    start = time.perf_counter()
    results = conformance.run_all(cases, jobs=args.jobs)
    seconds = time.perf_counter() - start
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)

    registered = set(onnx_ops())
    table = conformance.summarize(results)
    print(f"onnx {onnx.__version__}, {len(cases)} direct node tests over {len(table)} op types, {seconds:.0f} s "
          f"({platform.machine()}, {args.jobs} jobs)\n")
    print(f"{'op type':<28} {'tests':>5}  {'frozen: pass refused FAIL':>26}  {'untouched: pass refused FAIL':>29}")
    for op in sorted(table):
        row = table[op]
        tests = sum(row["frozen"].values())
        cells = []
        for form in conformance.FORMS:
            counts = row[form]
            fail = sum(counts[o] for o in ("wrong", "error", "crash", "hang"))
            cells.append(f"{counts['pass']:>4} {counts['refused']:>7} {fail:>4}")
        mark = "" if op in registered else "  (no lowering)"
        print(f"{op:<28} {tests:>5}  {cells[0]:>26}  {cells[1]:>29}{mark}")
        if args.reasons:
            reasons = collections.Counter(r.detail.splitlines()[0][:160] for r in results
                                          if r.op_type == op and r.outcome == "refused" and r.form == "frozen")
            for reason, n in reasons.most_common(4):
                print(f"{'':<30}{n}x {reason}")

    print()
    for form in conformance.FORMS:
        counts = collections.Counter(r.outcome for r in results if r.form == form)
        ops_passing = sum(1 for op in table if table[op][form]["pass"])
        print(f"{form:<9}: op types with a passing test {ops_passing} of {len(table)}; tests "
              + ", ".join(f"{o} {counts.get(o, 0)}" for o in conformance.OUTCOMES))
    either = sum(1 for op in table if any(table[op][f]["pass"] for f in conformance.FORMS))
    print(f"either form: op types with a passing test {either} of {len(table)}")


if __name__ == "__main__":
    main()

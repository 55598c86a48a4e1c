"""Compile time against graph size: a chain of N elementwise nodes (Add of a constant, Relu, Mul, Sigmoid
repeating) compiled to TFLite, seconds per 1,000 nodes. The compiler should be linear: the per-1,000 figure flat.

    python benchmarks/bench_compile_time.py [--sizes 1000,2000,5000,10000,20000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def chain_model(nodes: int):
    """x -> (Add c, Relu, Mul c, Sigmoid) repeated until `nodes` nodes; float32 [1, 64]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    kinds = ("Add", "Relu", "Mul", "Sigmoid")
    c = numpy_helper.from_array(np.full([64], 0.5, np.float32), "c")
    graph_nodes, prev = [], "x"
    for i in range(nodes):
        kind = kinds[i % len(kinds)]
        out = f"t{i}" if i < nodes - 1 else "y"
        inputs = [prev, "c"] if kind in ("Add", "Mul") else [prev]
        graph_nodes.append(helper.make_node(kind, inputs, [out], name=f"n{i}"))
        prev = out
    graph = helper.make_graph(graph_nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [c])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from edgekit.converters.tflite import compile_onnx
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")
    sizes = [int(s) for s in args.sizes.split(",")]
    models = {n: chain_model(n) for n in sizes}
    compile_onnx(models[sizes[0]]).to_bytes()  # warm-up: imports and first-call caches are not graph size
    times: dict = {n: [] for n in sizes}
    ops: dict = {}
    for _ in range(args.repeat):  # sizes interleaved, so a noisy moment does not land on one size only
        for n in sizes:
            start = time.perf_counter()
            compiled = compile_onnx(models[n])
            compiled.to_bytes()
            times[n].append(time.perf_counter() - start)
            ops[n] = len(compiled.graph.ops)
    print(f"{'nodes':>7} {'compile s (median)':>19} {'s per 1,000 nodes':>18} {'TFLite ops':>11}")
    for n in sizes:
        median = statistics.median(times[n])
        print(f"{n:>7} {median:>19.2f} {median / n * 1000:>18.3f} {ops[n]:>11}")

if __name__ == "__main__":
    main()

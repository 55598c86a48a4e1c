"""Where the time goes: per-node and per-op-type breakdown from ONNX Runtime's profiler, with MACs and GMAC/s.

LiteRT's Python API exposes no per-op profiler, so .tflite models get whole-model figures and a static op table.
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

#: ONNX Runtime kernel names (after its own fusions) whose MACs follow from their profiled shapes
_CONV_OPS = {"Conv", "FusedConv", "NchwcConv", "ConvInteger"}
_MATMUL_OPS = {"MatMul", "FusedMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
               "QLinearMatMul"}
_GEMM_OPS = {"Gemm", "FusedGemm", "QGemm"}
_RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "DynamicQuantizeLSTM": 4}
LITERT_NO_OP_PROFILER = ("per-op times are not available for .tflite: ai-edge-litert's Python Interpreter exposes no "
                         "op profiler (libLiteRt has a C profiler API, LiteRtCompiledModelGetProfiler, that its "
                         "Python bindings do not wrap; the C++ benchmark_model tool's --enable_op_profiling "
                         "reports per-op times). Shown: whole-model latency and each op type's share of the MACs.")


def profile(model, *, runtime: str = "auto", provider: str = "auto", threads: int | None = None,
            batch: int | None = None, dims: dict | None = None, inputs: str | None = None, seed: int = 0,
            runs: int = 10, warmup: int = 3, optimization: str = "all") -> dict:
    """Profile one model; returns a JSON-ready dict with `nodes` and `op_types` sorted by time (or MACs)."""
    from edgekit import envinfo
    from edgekit.errors import UsageError
    from edgekit.fileio import sniff_format

    if runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}.")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 or more, got {warmup}.")
    fmt = sniff_format(model)
    if fmt not in ("onnx", "tflite"):
        raise UsageError(f"'{model}' is a {fmt} file; profile runs .onnx and .tflite models.",
                         hint="Export it first: edgekit export SPEC -o model.onnx.")
    threads = threads or envinfo.usable_cores()
    use = runtime if runtime != "auto" else {"onnx": "onnxruntime", "tflite": "litert"}[fmt]
    if use in ("onnxruntime", "ort"):
        result = _profile_ort(str(model), provider, threads, batch, dims, inputs, seed, runs, warmup, optimization)
    else:
        result = _profile_litert(str(model), runtime, provider, threads, batch, dims, inputs, seed, runs, warmup)
    result["environment"] = envinfo.fingerprint(threads=threads)
    return result


def _feeds(session, batch, dims, inputs, seed):
    from edgekit.inputs import load_npz, random_inputs
    if inputs:
        return load_npz(inputs, session.inputs)
    return random_inputs(session.inputs, seed, dims, batch)


# ---------------------------------------------------------------- ONNX Runtime

def _profile_ort(model, provider, threads, batch, dims, inputs, seed, runs, warmup, optimization) -> dict:
    import warnings

    from edgekit.runtimes.ort import OrtSession

    with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            session = OrtSession.open(model, provider=provider, threads=threads, optimization=optimization,
                                      profile=True, profile_prefix=str(Path(tmp) / "ort"))
        with session:
            feeds = _feeds(session, batch, dims, inputs, seed)
            prepared = session.prepare(feeds)
            for _ in range(warmup + runs):
                session.run_prepared(prepared)
            trace = json.loads(Path(session.end_profiling()).read_text())
            notes = list(session.notes)
            prov = session.provider
    nodes, op_types, run_us = summarize_ort_trace(trace, skip_runs=warmup)
    if any(n["provider"] == "cuda" for n in nodes):
        notes.append("CUDA kernels run asynchronously: ORT's per-node times for CUDA nodes can reflect launching "
                     "them rather than their GPU execution; the per-run total is reliable.")
    graph_macs, macs_note = _graph_macs(model, {k: v.shape for k, v in feeds.items()})
    if macs_note:
        notes.append(macs_note)
    for n in nodes:
        if n["macs"] is None and graph_macs and n["name"] in graph_macs:
            n["macs"] = graph_macs[n["name"]][1]
    _add_rates(nodes)
    op_types = _group_by_op(nodes)
    kernel_us = sum(n["mean_us"] for n in nodes)
    executed_macs = sum(n["macs"] or 0 for n in nodes)
    # the model's own MACs (what the graph asks for) rate the whole run; kernels may do more (padded channels)
    total_macs = sum(v for _, v in graph_macs.values()) if graph_macs else executed_macs
    if graph_macs and executed_macs > 1.01 * total_macs:
        notes.append(f"ORT's kernels executed {executed_macs / 1e6:.1f} M MACs for the model's "
                     f"{total_macs / 1e6:.1f} M: its NCHWc convolutions pad channel counts to the SIMD block size. "
                     "Per-node MACs are what ran; the whole-model GMAC/s uses the model's MACs.")
    mean_run_us = float(np.mean(run_us)) if run_us else kernel_us
    providers: dict[str, float] = {}
    for n in nodes:
        providers[n["provider"]] = providers.get(n["provider"], 0.0) + n["mean_us"]
    return {
        "model": model, "format": "onnx", "runtime": "onnxruntime", "provider": prov, "threads": threads,
        "optimization": optimization, "runs": len(run_us), "warmup": warmup, "per_node": True,
        "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in feeds.items()},
        "run_ms": mean_run_us / 1000, "kernel_ms": kernel_us / 1000,
        "overhead_ms": max(0.0, mean_run_us - kernel_us) / 1000,
        "total_macs": total_macs or None, "executed_macs": executed_macs or None,
        "gmacs_per_s": (total_macs / (mean_run_us * 1e3)) if total_macs and mean_run_us else None,
        "provider_share": {p: (t / kernel_us if kernel_us else 0.0) for p, t in providers.items()},
        "nodes": nodes, "op_types": op_types, "notes": notes,
    }


def summarize_ort_trace(trace: list[dict], skip_runs: int = 0) -> tuple[list[dict], list[dict], list[float]]:
    """ORT profiler events → (per-node rows, per-op-type rows, durations of the counted runs in µs).

    Runs are the 'model_run' session events; node events before the end of run number `skip_runs` (warm-up)
    are dropped. Times are means per counted run.
    """
    runs = sorted((e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    counted = runs[skip_runs:] if len(runs) > skip_runs else runs
    start = counted[0]["ts"] if counted else 0
    n_runs = max(1, len(counted))
    by_node: dict[str, dict] = {}
    for e in trace:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e.get("ts", 0) < start:
            continue
        args = e.get("args", {})
        name = e["name"][: -len("_kernel_time")]
        row = by_node.get(name)
        if row is None:
            row = by_node[name] = {
                "name": name, "op_type": args.get("op_name", "?"),
                "provider": args.get("provider", "?").replace("ExecutionProvider", "").lower(),
                "total_us": 0.0, "calls": 0,
                "input_shapes": [_shape_of(s) for s in args.get("input_type_shape", [])],
                "output_shapes": [_shape_of(s) for s in args.get("output_type_shape", [])],
            }
        row["total_us"] += float(e.get("dur", 0))
        row["calls"] += 1
    nodes = []
    for row in by_node.values():
        row["mean_us"] = row.pop("total_us") / n_runs
        row["calls_per_run"] = row.pop("calls") / n_runs
        row["macs"] = kernel_macs(row["op_type"], row["input_shapes"], row["output_shapes"])
        nodes.append(row)
    total = sum(n["mean_us"] for n in nodes) or 1.0
    for n in nodes:
        n["share"] = n["mean_us"] / total
    nodes.sort(key=lambda n: -n["mean_us"])
    return nodes, _group_by_op(nodes), [float(r["dur"]) for r in counted]


def _shape_of(entry) -> list[int]:
    """{'float': [1, 3, 224, 224]} → [1, 3, 224, 224]."""
    if isinstance(entry, dict) and entry:
        return [int(d) for d in next(iter(entry.values()))]
    return []


def kernel_macs(op: str, ins: list[list[int]], outs: list[list[int]]) -> int | None:
    """MACs of one executed ORT kernel from its profiled shapes (None when the op has no MAC formula here)."""
    out = outs[0] if outs else None
    if op in _CONV_OPS or op == "QLinearConv":
        w = ins[3] if op == "QLinearConv" and len(ins) > 3 else ins[1] if len(ins) > 1 else None
        if not w or not out or len(w) != len(out):
            return None  # blocked (NCHWc-reordered) weights: fall back to the graph estimate by name
        return math.prod(out) * math.prod(w[1:])
    if op == "ConvTranspose" and len(ins) > 1 and ins[0] and ins[1]:
        return math.prod(ins[0]) * math.prod(ins[1][1:])
    if op in _MATMUL_OPS and ins and ins[0] and out:
        return math.prod(out) * ins[0][-1]
    if op in _GEMM_OPS and ins and ins[0] and out and out[0]:
        return math.prod(out) * (math.prod(ins[0]) // out[0])  # A is MxK or KxM (transA): K = |A| / M
    if op in _RNN_GATES and len(ins) > 1 and ins[0] and ins[1]:
        x, w = ins[0], ins[1]
        hidden = w[1] // _RNN_GATES[op]
        return w[0] * x[0] * x[1] * _RNN_GATES[op] * hidden * (x[2] + hidden)
    return None


def _graph_macs(model: str, input_shapes: dict[str, tuple] | None = None):
    """estimate_macs of the ONNX graph with its inputs fixed to the shapes that ran (needs the onnx package).

    Returns (macs, None), or (None, note) when unavailable.
    """
    try:
        from edgekit.macs import estimate_macs
        from edgekit.onnx_io import load_onnx
        proto = load_onnx(model)
        for vi in proto.graph.input:
            shape = (input_shapes or {}).get(vi.name)
            dims = vi.type.tensor_type.shape.dim
            if shape is not None and len(dims) == len(shape):
                for d, size in zip(dims, shape):
                    d.Clear()
                    d.dim_value = int(size)
        return estimate_macs(proto), None
    except Exception as exc:  # MACs are extra information; the timing breakdown stands without them
        return None, f"MAC estimates from the graph are unavailable ({type(exc).__name__}: {exc})."


def _add_rates(nodes: list[dict]) -> None:
    for n in nodes:
        n["gmacs_per_s"] = (n["macs"] / (n["mean_us"] * 1e3)) if n.get("macs") and n.get("mean_us") else None


def _group_by_op(nodes: list[dict]) -> list[dict]:
    groups: dict[str, dict] = {}
    for n in nodes:
        g = groups.setdefault(n["op_type"], {"op_type": n["op_type"], "count": 0, "mean_us": 0.0, "share": 0.0,
                                             "macs": 0, "providers": set()})
        g["count"] += 1
        g["mean_us"] += n.get("mean_us") or 0.0
        g["share"] += n.get("share") or 0.0
        g["macs"] += n.get("macs") or 0
        g["providers"].add(n.get("provider", "?"))
    rows = []
    for g in groups.values():
        g["providers"] = sorted(g["providers"])
        g["macs"] = g["macs"] or None
        g["gmacs_per_s"] = (g["macs"] / (g["mean_us"] * 1e3)) if g["macs"] and g["mean_us"] else None
        rows.append(g)
    rows.sort(key=lambda g: (-(g["mean_us"] or 0), -(g["macs"] or 0)))
    return rows


# ---------------------------------------------------------------- LiteRT

def _profile_litert(model, runtime, provider, threads, batch, dims, inputs, seed, runs, warmup) -> dict:
    import edgekit.runtimes as runtimes
    from edgekit.timing import time_session

    with runtimes.load(model, runtime=runtime, provider=provider, threads=threads) as session:
        feeds = _feeds(session, batch, dims, inputs, seed)
        stats = time_session(session, feeds, runs=runs, warmup=warmup)
        nodes, delegated = litert_ops(session.native)
        notes = [LITERT_NO_OP_PROFILER] + list(session.notes)
        if delegated:
            notes.append(f"XNNPACK took over {delegated} partition(s) of the graph; LiteRT does not say which "
                         "ops stayed on its reference kernels.")
        prov = "cpu (xnnpack)" if delegated else "cpu"
    total_macs = sum(n["macs"] or 0 for n in nodes)
    for n in nodes:
        n["provider"] = prov
        n["share_of_macs"] = (n["macs"] / total_macs) if n["macs"] and total_macs else None
    op_types = _group_by_op(nodes)
    for g in op_types:
        g["mean_us"] = g["share"] = g["gmacs_per_s"] = None
        g["share_of_macs"] = (g["macs"] / total_macs) if g["macs"] and total_macs else None
    op_types.sort(key=lambda g: (-(g["macs"] or 0), -g["count"]))
    nodes.sort(key=lambda n: -(n["macs"] or 0))
    return {
        "model": model, "format": "tflite", "runtime": "litert", "provider": prov, "threads": threads,
        "runs": stats.runs, "warmup": warmup, "per_node": False,
        "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in feeds.items()},
        "run_ms": stats.mean, "latency": stats.as_dict(samples=False), "kernel_ms": None, "overhead_ms": None,
        "total_macs": total_macs or None,
        "gmacs_per_s": (total_macs / (stats.mean * 1e6)) if total_macs else None,
        "provider_share": {prov: 1.0}, "nodes": nodes, "op_types": op_types, "notes": notes,
    }


def litert_ops(interp) -> tuple[list[dict], int]:
    """Static op list of a LiteRT interpreter with MACs from tensor shapes; also the number of delegate nodes."""
    shapes = {d["index"]: [int(s) for s in d["shape"]] for d in interp.get_tensor_details()}
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    nodes, delegated = [], 0
    for op in interp._get_ops_details():  # the public API has no op listing; this is what LiteRT's own tools use
        if op["op_name"] == "DELEGATE":
            delegated += 1
            continue
        ins = [shapes.get(int(i)) if int(i) >= 0 else None for i in op["inputs"]]
        outs = [shapes.get(int(i)) for i in op["outputs"]]
        nodes.append({"name": names.get(int(op["outputs"][0]), f"op{op['index']}") if len(op["outputs"]) else
                      f"op{op['index']}", "op_type": op["op_name"], "mean_us": None, "share": None,
                      "macs": tflite_macs(op["op_name"], ins, outs), "input_shapes": ins, "output_shapes": outs})
    return nodes, delegated


def tflite_macs(op: str, ins, outs) -> int | None:
    out = outs[0] if outs else None
    w = ins[1] if len(ins) > 1 else None
    if not out:
        return None
    if op == "CONV_2D" and w:
        return math.prod(out) * math.prod(w[1:])          # weights OHWI
    if op == "CONV_3D" and w:
        return math.prod(out) * math.prod(w[:-1])         # weights DHWIO
    if op == "DEPTHWISE_CONV_2D" and w:
        return math.prod(out) * w[1] * w[2]               # weights 1HW(C*M)
    if op == "FULLY_CONNECTED" and w:
        return math.prod(out) * w[-1]                     # weights [O, I]
    if op == "BATCH_MATMUL" and ins and ins[0]:
        return math.prod(out) * ins[0][-1]
    if op == "TRANSPOSE_CONV" and w and len(ins) > 2 and ins[2]:
        return math.prod(ins[2]) * math.prod(w[:3])       # inputs: output_shape, weights OHWI, x
    return None

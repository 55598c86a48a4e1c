"""`bench`: each model timed in its own process (the timing loop itself is edgekit.timing), results compared."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

# the timing loop moved to edgekit.timing; re-exported for bench's callers (profile, bundle, quantize, tests)
from edgekit.timing import (DEFAULT_MIN_TIME, MAX_RUNS, MIN_RUNS, LatencyStats, time_callable,  # noqa: F401
                            time_session)


# ---------------------------------------------------------------- bench(): each model in its own process

PROGRESS_TAG = "EDGEKIT-PROGRESS "
#: what every throughput figure is computed from: the sustained rate over the timed runs, not the typical run
THROUGHPUT_FROM = "mean latency (1000 / mean_ms)"
KILL_GRACE_S = 10.0  # a worker still running this long after --time-limit is killed


@dataclass
class BenchJob:
    """What one worker process measures (JSON-serialisable, passed by file)."""

    path: str
    runtime: str = "auto"
    provider: str = "auto"
    threads: int | None = None
    batch: int | None = None
    dims: dict = field(default_factory=dict)
    inputs: str | None = None
    seed: int = 0
    runs: int | None = None
    min_time: float | None = None
    warmup: int = 5
    time_limit: float | None = None
    samples: bool = True
    optimization: str | None = None  # ONNX Runtime graph-optimization level (None: ORT's default, all)


def bench(models, *, runtime: str = "auto", provider: str = "auto", threads: int | None = None,
          batch: int | None = None, dims: dict | None = None, inputs: str | None = None, seed: int = 0,
          runs: int | None = None, min_time: float | None = None, warmup: int = 5, time_limit: float | None = None,
          isolate: bool = True, keep_going: bool = False, samples: bool = True, optimization: str | None = None,
          progress=None) -> dict:
    """Benchmark model files; returns a JSON-ready report (environment, settings, one entry per model, ratios).

    Each model is measured in a fresh Python process (`isolate=True`), so its peak memory is its own and one
    model's allocations do not slow the next. `threads=None` uses every usable core, the same for every runtime.
    `time_limit` (seconds per model) ends the timing loop early; a worker that overruns it (a hung load) is killed.
    A failing model raises its error, or with `keep_going` is reported and the others still run.
    `progress(event)` gets dicts: {"index", "model", "phase": "start"|"load"|"timing"|"tick"|"done", ...}.
    """
    from edgekit import envinfo
    from edgekit.errors import UsageError
    from edgekit.fileio import sniff_format

    models = [str(m) for m in models]
    if not models:
        raise UsageError("No model given.", hint="Name one or more .onnx/.tflite files.")
    if runs is not None and min_time is not None:
        raise UsageError("Give either --runs or --min-time, not both.")
    if runs is not None and runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}.")
    if min_time is not None and min_time <= 0:
        raise UsageError(f"--min-time must be positive, got {min_time}.")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 or more, got {warmup}.")
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}.")
    if time_limit is not None and time_limit <= 0:
        raise UsageError(f"--time-limit must be positive, got {time_limit}.")
    for m in models:  # fail fast on a missing or non-model file, before spending time on the others
        if sniff_format(m) not in ("onnx", "tflite"):
            raise UsageError(f"'{m}' is a {sniff_format(m)} file; bench runs .onnx and .tflite models.",
                             hint="Export it first: edgekit export SPEC -o model.onnx.")
    if inputs is not None:
        from pathlib import Path
        if not Path(inputs).is_file():
            raise UsageError(f"The inputs file '{inputs}' does not exist.", hint="Give an .npz keyed by input name.")
    threads = threads or envinfo.usable_cores()
    notify = progress or (lambda event: None)
    results = []
    for index, model in enumerate(models):
        job = BenchJob(path=model, runtime=runtime, provider=provider, threads=threads, batch=batch,
                       dims=dict(dims or {}), inputs=inputs, seed=seed, runs=runs, min_time=min_time, warmup=warmup,
                       time_limit=time_limit, samples=samples, optimization=optimization)
        notify({"index": index, "model": model, "phase": "start"})
        if isolate:
            result = _run_isolated(job, lambda ev, i=index, m=model: notify({"index": i, "model": m, **ev}))
        else:
            result = _run_job(job, lambda ev, i=index, m=model: notify({"index": i, "model": m, **ev}))
            result.setdefault("notes", []).append(
                "measured in this process (isolate=False): peak memory includes everything loaded before.")
        notify({"index": index, "model": model, "phase": "done", "result": result})
        if result["status"] != "ok" and not keep_going:
            raise error_from_dict(result["error"])
        results.append(result)
    return {
        "edgekit_bench": 1,
        "environment": envinfo.fingerprint(threads=threads),
        "settings": {"runtime": runtime, "provider": provider, "threads": threads, "batch": batch,
                     "dims": dict(dims or {}), "inputs": inputs or f"random (seed {seed})", "runs": runs,
                     "min_time": min_time if runs is None else None, "warmup": warmup, "time_limit": time_limit,
                     "isolated": isolate, "optimization": optimization},
        "models": results,
        "comparison": compare_results(results),
    }


def compare_results(results: list[dict]) -> list[dict]:
    """Ratios against the first model that ran: latency (p50, mean), throughput, memory and size."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return []
    base = ok[0]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append({"model": r["model"], "status": r["status"]})
            continue
        rows.append({
            "model": r["model"],
            "p50_ratio": _ratio(r["latency"]["p50_ms"], base["latency"]["p50_ms"]),
            "mean_ratio": _ratio(r["latency"]["mean_ms"], base["latency"]["mean_ms"]),
            "speedup": _ratio(base["latency"]["p50_ms"], r["latency"]["p50_ms"]),
            "throughput_ratio": _ratio(r["throughput"]["samples_per_s"], base["throughput"]["samples_per_s"]),
            "memory_ratio": _ratio((r["memory"] or {}).get("peak_rss_delta_mb"),
                                   (base["memory"] or {}).get("peak_rss_delta_mb")),
            "size_ratio": _ratio(r["file_size_bytes"], base["file_size_bytes"]),
        })
    return rows


def _ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def error_from_dict(d: dict):
    """Rebuild the EdgekitError a worker reported."""
    from edgekit import errors
    cls = getattr(errors, d.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.EdgekitError)):
        cls = errors.InternalError
    return cls(d.get("message", "unknown error"), hint=d.get("hint"))


def _error_dict(exc: BaseException) -> dict:
    from edgekit.errors import EdgekitError
    if isinstance(exc, EdgekitError):
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
    import traceback
    return {"type": "InternalError", "message": f"edgekit hit an unexpected error: {type(exc).__name__}: {exc}",
            "hint": "Run again with --debug for the traceback and report it.", "exit_code": 1,
            "traceback": traceback.format_exc()}


def _run_isolated(job: BenchJob, notify) -> dict:
    """Run one job in `python -m edgekit.bench JOBFILE`, relaying its progress lines; kill it if it overruns."""
    import json
    import os
    import queue
    import subprocess
    import sys
    import tempfile
    import threading
    from dataclasses import asdict
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(asdict(job)))
        # its own session (process group), so that stopping it stops anything it started too
        proc = subprocess.Popen([sys.executable, "-m", "edgekit.bench", str(job_file), str(result_file)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=os.name == "posix")
        lines: queue.Queue = queue.Queue()
        stderr_tail: list[str] = []

        def pump(stream, sink):
            for line in stream:
                sink(line)
        threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True).start()
        err_thread = threading.Thread(target=pump, args=(proc.stderr, lambda l: stderr_tail.append(l)), daemon=True)
        err_thread.start()
        start = time.monotonic()
        try:
            killed = _relay_until_done(proc, lines, job, start, notify)
        finally:  # an interrupt (Ctrl-C) or error here must not leave the worker running in its own session
            if proc.poll() is None:
                _kill_worker(proc)
        proc.wait()
        err_thread.join(timeout=2)
        if killed:
            return _failed(job, {"type": "GateError", "exit_code": 6,
                                 "message": f"'{job.path}' was still running {job.time_limit + KILL_GRACE_S:.0f} s "
                                            f"after starting (--time-limit {job.time_limit} s); it was stopped.",
                                 "hint": "Raise --time-limit, or check the model loads and runs at all."})
        if result_file.exists():
            return json.loads(result_file.read_text())
        tail = "".join(stderr_tail)[-1500:].strip()
        return _failed(job, {"type": "InternalError", "exit_code": 1,
                             "message": f"the benchmark process for '{job.path}' died (exit status "
                                        f"{proc.returncode}) without a result" + (f": {tail}" if tail else "."),
                             "hint": "A crash inside the runtime; try --threads 1, or report it with the model."})


def _relay_until_done(proc, lines, job: BenchJob, start: float, notify) -> bool:
    """Relay the worker's progress lines until it exits; kill it when it overruns --time-limit. True if killed."""
    import json
    import queue
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            line = None
        if line and line.startswith(PROGRESS_TAG):
            try:
                notify(json.loads(line[len(PROGRESS_TAG):]))
            except ValueError:
                pass
        elapsed = time.monotonic() - start
        if line is None:
            if proc.poll() is not None and lines.empty():
                break
            notify({"phase": "tick", "elapsed_s": elapsed})
        if job.time_limit and elapsed > job.time_limit + KILL_GRACE_S and proc.poll() is None:
            _kill_worker(proc)
            return True
    return False


def _kill_worker(proc) -> None:
    """SIGKILL the worker's whole process group (it leads its own session), or the worker alone elsewhere."""
    import os
    import signal
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    else:
        proc.kill()
    proc.wait()


def _failed(job: BenchJob, error: dict) -> dict:
    return {"model": job.path, "status": "error", "error": error}


def _memory_mark() -> dict:
    """Reset the peak-RSS counter where Linux allows it; return the baseline (MB)."""
    status = _proc_status()
    reset = False
    if status:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            reset = True
            status = _proc_status()
        except OSError:
            pass
        return {"baseline_rss_mb": status["VmRSS"], "baseline_hwm_mb": status["VmHWM"], "hwm_reset": reset,
                "method": "/proc/self/status VmHWM" + (" (reset after imports)" if reset else "")}
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2**20 if sys_platform() == "darwin" else peak / 1024
    return {"baseline_rss_mb": None, "baseline_hwm_mb": peak_mb, "hwm_reset": False, "method": "getrusage ru_maxrss"}


def _memory_delta(mark: dict) -> dict:
    status = _proc_status()
    if status:
        peak, rss = status["VmHWM"], status["VmRSS"]
    else:
        import resource
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak, rss = (raw / 2**20 if sys_platform() == "darwin" else raw / 1024), None
    base = mark["baseline_rss_mb"] if mark["hwm_reset"] else mark["baseline_hwm_mb"]
    return {"peak_rss_delta_mb": max(0.0, peak - base), "peak_rss_mb": peak, "final_rss_mb": rss,
            "baseline_rss_mb": base, "method": mark["method"]}


def sys_platform() -> str:
    import sys
    return sys.platform


def _proc_status() -> dict | None:
    try:
        with open("/proc/self/status") as fh:
            out = {}
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
            return out if len(out) == 2 else None
    except OSError:
        return None


def _import_runtime(fmt: str, runtime: str) -> None:
    """Import the runtime before the memory baseline so its libraries do not count as the model's."""
    rt = runtime if runtime != "auto" else {"onnx": "onnxruntime", "tflite": "litert"}.get(fmt)
    if rt in ("onnxruntime", "ort"):
        from edgekit.deps import require
        require("onnxruntime", "Running ONNX models")
    elif rt in ("litert", "tflite"):
        from edgekit.runtimes.litert import interpreter_class
        interpreter_class()


def _warm_numpy() -> None:
    """Touch the numpy parts a run uses (random, percentiles) so their lazy imports precede the memory baseline."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal(16).astype(np.float32)
    np.percentile(data, [50, 90, 99])
    rng.integers(0, 10, 4)
    np.load  # noqa: B018 - numpy.lib.npyio is imported with numpy


def _run_job(job: BenchJob, notify) -> dict:
    """Measure one model in this process; errors come back inside the result."""
    import os
    import warnings
    from edgekit.fileio import sniff_format
    try:
        fmt = sniff_format(job.path)
        _import_runtime(fmt, job.runtime)
        import edgekit.runtimes as runtimes
        from edgekit.inputs import load_npz, random_inputs, resolve_shape
        _warm_numpy()
        mark = _memory_mark()
        notify({"phase": "load"})
        t0 = time.perf_counter_ns()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fallbacks are reported through session.notes
            extra = {"optimization": job.optimization} if job.optimization and fmt == "onnx" else {}
            session = runtimes.load(job.path, runtime=job.runtime, provider=job.provider, threads=job.threads,
                                    **extra)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        with session:
            if job.inputs:
                feeds = load_npz(job.inputs, session.inputs)
            else:
                for info in session.inputs:  # name the dynamic dim that has no value before generating anything
                    resolve_shape(info, job.dims, job.batch)
                feeds = random_inputs(session.inputs, job.seed, job.dims, job.batch)

            def started(first_ms, warm_ms):
                notify({"phase": "timing", "first_ms": first_ms, "warmup_ms": warm_ms, "runs": job.runs,
                        "min_time": job.min_time if job.runs is None else None})
            stats = time_session(session, feeds, runs=job.runs, min_time=job.min_time, warmup=job.warmup,
                                 time_limit=job.time_limit, on_timing_start=started)
            memory = _memory_delta(mark)
            first = next(iter(feeds.values()), None)
            batch = job.batch or (int(first.shape[0]) if first is not None and first.ndim > 0 else 1)
            notes = list(session.notes)
            if stats.stopped_early:
                notes.append(f"the time limit ({job.time_limit} s) stopped the run after {stats.runs} timed runs.")
            return {
                "model": job.path, "status": "ok", "format": fmt, "file_size_bytes": os.path.getsize(job.path),
                "runtime": session.runtime, "provider": session.provider, "threads": job.threads,
                "options": dict(getattr(session, "options", {}) or {}),
                "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in feeds.items()},
                "batch": batch, "load_ms": load_ms, "first_ms": stats.first_ms,
                "latency": stats.as_dict(samples=job.samples),
                "throughput": {"inferences_per_s": stats.inferences_per_s,
                               "samples_per_s": stats.inferences_per_s * batch, "from": THROUGHPUT_FROM},
                "memory": memory, "notes": notes,
            }
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises it
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failed(job, _error_dict(exc))


def _worker_main(argv: list[str]) -> int:
    """`python -m edgekit.bench JOBFILE RESULTFILE`: measure one model, write the result JSON."""
    import json
    import sys
    from edgekit.fileio import atomic_write

    job = BenchJob(**json.loads(open(argv[0]).read()))

    def notify(event):
        sys.stdout.write(PROGRESS_TAG + json.dumps(event) + "\n")
        sys.stdout.flush()
    result = _run_job(job, notify)
    atomic_write(argv[1], json.dumps(result))
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_worker_main(sys.argv[1:]))

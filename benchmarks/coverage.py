"""Model coverage: real torchvision and transformers architectures through export → optimize → TFLite (float,
INT8, dynamic-range), each step validated exactly as the commands validate, with the reason for every refusal.

    python benchmarks/coverage.py                 # every model in coverage_models.MODELS (resumable)
    python benchmarks/coverage.py --quick         # the fast subset
    python benchmarks/coverage.py --models hf_bert,resnet18 --redo
    python benchmarks/coverage.py --table         # only print the table of what --out holds
    python benchmarks/coverage.py --quick --ray auto   # one Ray task per model (a local instance, or `ray start`'s)

Each step runs in its own child process with a time limit (`--step-timeout`), so a LiteRT abort or a hang is a
recorded result, never the end of the run. Results are appended to `--out` as JSON lines, one per model; a model
already there is skipped unless --redo. The steps call the library functions the commands call:
`edgekit.converters.torch_export.export`, `edgekit.optimize.optimize`, `edgekit.quantize.quantize` and
`edgekit.convert.convert`, so the validation gates are the commands' own. Quantization runs with `speed="off"`:
the suite asks whether a quantized model converts, not whether ONNX Runtime's QDQ model is faster here.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import coverage_models  # noqa: E402
from coverage_models import sample_inputs  # noqa: E402

#: step → the step whose output it reads
STEPS = {"export": None, "optimize": "export", "float": "optimize", "bench": "float",
         "static": "optimize", "int8": "static", "dynamic": "optimize", "dynamic_range": "dynamic"}
FILES = {"export": "model.onnx", "optimize": "optimized.onnx", "float": "float.tflite", "static": "int8.onnx",
         "int8": "int8.tflite", "dynamic": "dynamic.onnx", "dynamic_range": "dynamic.tflite"}
CONVERSIONS = {"float": "float", "int8": "INT8", "dynamic_range": "dynamic-range"}
CALIBRATION_SAMPLES = 16
EVAL_SAMPLES = 16  # quantize's accuracy report (and blame) on this many samples, not its default 500
BENCH_THREADS = 2
STEP_TIMEOUT = 600.0  # VGG-11-BN's static quantization alone takes minutes on 2 loaded cores
DEFAULT_OUT = HERE / "coverage_results.jsonl"


# ---------------------------------------------------------------- the steps (each runs in a child process)

def _export(model, work: Path) -> dict:
    from edgekit.converters.torch_export import export
    # the module:factory form (benchmarks/ is on sys.path); the file.py:factory form runs the file as a module
    # missing from sys.modules, where @dataclass fails (reported)
    spec = f"coverage_models:{model.name}"
    result = export(spec, work / FILES["export"], input_shapes=model.input_shapes(), force=True)
    return {"exporter": result.exporter, "opset": result.opset,
            "max_abs": max((v["max_abs"] for v in result.validation), default=0.0)}


def _optimize(model, work: Path) -> dict:
    from edgekit.optimize import optimize
    result = optimize(work / FILES["export"], work / FILES["optimize"], force=True)
    return {"nodes_before": result.nodes_before, "nodes_after": result.nodes_after}


def _convert(source: str, target: str):
    def step(model, work: Path) -> dict:
        from edgekit.convert import convert
        result = convert(work / FILES[source], work / FILES[target], force=True)
        outputs = result.outputs
        return {"mode": result.mode, "compile_s": result.compile_seconds, "validate_s": result.validate_seconds,
                "size_bytes": result.size_bytes, "ops": sum(result.ops.values()),
                "max_abs": max((o["max_abs"] for o in outputs), default=0.0),
                "cosine": min((o["cosine"] for o in outputs), default=1.0),
                "top1": _min_or_none(o.get("top1_agreement") for o in outputs),
                "float_islands": _islands(result.quantization)}
    return step


def _min_or_none(values):
    values = [v for v in values if v is not None]
    return min(values) if values else None


def _islands(quantization: dict) -> int | None:
    islands = quantization.get("islands")  # INT8: ops the compiler kept in float
    return len(islands) if isinstance(islands, (list, dict)) else None


def _quantize(mode: str):
    def step(model, work: Path) -> dict:
        from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
        calib = None
        if mode == "static":
            calib = work / "calibration.npz"
            np.savez(calib, **sample_inputs(model, CALIBRATION_SAMPLES, seed=0))
        result = quantize(work / FILES["optimize"], work / FILES[mode], mode=mode,
                          calibration=Calibration(str(calib) if calib else None), speed=SpeedPolicy("off"),
                          gate=AccuracyGate(max_eval=EVAL_SAMPLES), force=True)
        return {"drop": result.accuracy.drop, "metric": result.accuracy.metric,
                "float_nodes": len(result.plan.float_nodes), "warnings": result.warnings[:3]}
    return step


def _bench(model, work: Path) -> dict:
    """p50 of ONNX Runtime (optimized float ONNX) and LiteRT (float TFLite), 2 threads each, same feeds."""
    from edgekit import runtimes
    from edgekit.bench import time_session
    feeds = {k: v[:1] for k, v in sample_inputs(model, 1, seed=1).items()}
    p50 = {}
    for runtime, name in (("onnxruntime", FILES["optimize"]), ("litert", FILES["float"])):
        with runtimes.load(work / name, runtime=runtime, threads=BENCH_THREADS,
                           **({"provider": "cpu"} if runtime == "onnxruntime" else {})) as session:
            p50[runtime] = time_session(session, feeds, min_time=1.0, warmup=3, time_limit=20.0).p50
    return {"ort_p50_ms": p50["onnxruntime"], "litert_p50_ms": p50["litert"],
            "ratio": p50["litert"] / p50["onnxruntime"]}


STEP_FUNCTIONS = {"export": _export, "optimize": _optimize, "float": _convert("optimize", "float"),
                  "bench": _bench, "static": _quantize("static"), "int8": _convert("static", "int8"),
                  "dynamic": _quantize("dynamic"), "dynamic_range": _convert("dynamic", "dynamic_range"),
                  "selftest_abort": lambda model, work: os.abort()}  # proves a SIGABRT is a record (tests)


def _child_main(step: str, name: str, work: Path) -> int:
    """Run one step; write {"status", ...} to work/STEP.json. ok | refused (an edgekit error) | error (anything else)."""
    import traceback
    model = coverage_models.MODELS[name]
    started = time.perf_counter()
    try:
        record = {"status": "ok", **STEP_FUNCTIONS[step](model, work)}
    except Exception as exc:  # recorded, never raised: the parent classifies it
        from edgekit.errors import EdgekitError
        message = str(exc).strip()
        record = {"status": "refused" if isinstance(exc, EdgekitError) else "error",
                  "error_type": type(exc).__name__, "reason": (message.splitlines() or [""])[0][:300],
                  "message": message[:4000]}
        refused = getattr(exc, "result", None)  # a conversion outside its gate: how far it was, for the table
        if refused is not None and getattr(refused, "outputs", None):
            record.update(cosine=min(o["cosine"] for o in refused.outputs),
                          top1=_min_or_none(o.get("top1_agreement") for o in refused.outputs),
                          steps_off=(refused.quantization or {}).get("steps_off"),
                          reference_moves=(refused.quantization or {}).get("reference_sensitivity_steps"))
        problems = getattr(exc, "problems", None)
        if problems:
            record["problems"] = [{k: p.get(k) for k in ("op_type", "reason")} for p in problems][:50]
        if not isinstance(exc, EdgekitError):
            record["traceback"] = traceback.format_exc()[-2000:]
    record["seconds"] = time.perf_counter() - started
    (work / f"{step}.json").write_text(json.dumps(record, default=str))
    return 0


def run_step(step: str, model_name: str, work: Path, timeout: float = STEP_TIMEOUT) -> dict:
    """One step in a child process: its record, or crashed (a signal or exit without a record) / timeout."""
    record_path = work / f"{step}.json"
    record_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--models", model_name, "--work", str(work)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "reason": f"step took longer than {timeout:g} s", "seconds": timeout}
    except BaseException:  # Ctrl-C, or a Ray task cancelled: the step's own session would outlive us
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if record_path.exists() and proc.returncode == 0:
        return json.loads(record_path.read_text())
    rc = proc.returncode
    what = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
    tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
    return {"status": "crashed", "reason": f"the step's process was {what}" + (f": {tail[-1][:200]}" if tail else ""),
            "stderr_tail": tail, "seconds": time.perf_counter() - started}


def run_model(model_name: str, work: Path | None = None, timeout: float = STEP_TIMEOUT,
              steps=tuple(STEPS), log=lambda _msg: None) -> dict:
    """Every step of one model (a step whose input failed is 'skipped' with the reason); one JSON-able record."""
    model = coverage_models.MODELS[model_name]
    with tempfile.TemporaryDirectory(prefix=f"coverage-{model_name}-") as tmp:
        work = Path(work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: dict[str, dict] = {}
        for step in steps:
            needs = STEPS[step]
            if needs is not None and results.get(needs, {}).get("status") != "ok":
                results[step] = {"status": "skipped", "reason": f"needs {needs}",
                                 "blocked_by": results.get(needs, {}).get("blocked_by", needs)}
                continue
            results[step] = run_step(step, model_name, work, timeout)
            if results[step]["status"] != "ok":
                results[step]["blocked_by"] = step
            log(f"  {model_name} {step}: {results[step]['status']} ({results[step].get('seconds', 0):.1f} s)"
                + (f" {results[step].get('reason', '')[:120]}" if results[step]["status"] != "ok" else ""))
    return {"model": model.name, "source": model.source, "kind": model.kind,
            "inputs": [[n, list(s), d] for n, s, d in model.inputs], "steps": results,
            "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


# ---------------------------------------------------------------- many models at once on Ray

def run_models_on_ray(names: list[str], address: str, timeout: float = STEP_TIMEOUT, steps=tuple(STEPS),
                      on_record=lambda rec: None) -> None:
    """Each model's `run_model` as one Ray task (`address`: "auto" or a cluster's, as `edgekit pipeline --ray`);
    `on_record` gets each record here, in the driver, as its task finishes, so --out is written by one process only.

    The workers load this file by its absolute path, so a cluster of several machines needs the checkout at the same
    path on each (a shared filesystem). A model's steps still run in child processes with their time limits, so a
    crash stays a record; Ctrl-C cancels the tasks, whose steps' processes are killed (run_step; a local instance
    shut down right after can leave a cancelled model's temporary work folder behind). Outcomes and
    reasons are the serial run's; validation figures differ at the noise level (the weights are seeded, but a
    Ray task has one CPU, OMP_NUM_THREADS=1, and sums in another order); the bench step's LiteRT/ORT
    ratio is taken while other models run, so quote a serial run's ratios."""
    from edgekit.pipeline.ray_sweep import ray_session
    with ray_session(address, what="the coverage suite's models") as ray:
        task = ray.remote(_model_task())
        script = str(Path(__file__).resolve())
        pending = [task.remote(script, name, timeout, tuple(steps)) for name in names]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                on_record(ray.get(done[0]))
        except BaseException:
            for ref in pending:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: run_step kills its step's process group
            if pending:  # before a local instance is shut down, with its workers
                ray.wait(pending, num_returns=len(pending), timeout=30)
            raise


def _model_task():
    """The Ray task, made here so cloudpickle sends it by value (a nested function): this file is not an importable
    module in the worker (it runs as __main__, or under the tests' own name), so it is loaded there by path."""
    def run_model_task(script: str, name: str, timeout: float, steps: tuple) -> dict:
        import importlib.util
        import sys
        import time
        module = sys.modules.get("edgekit_coverage_suite")
        if module is None:  # once per worker process
            spec = importlib.util.spec_from_file_location("edgekit_coverage_suite", script)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        started = time.perf_counter()
        rec = module.run_model(name, timeout=timeout, steps=steps)
        rec["seconds"] = time.perf_counter() - started
        return rec
    return run_model_task


def _summary(rec: dict) -> str:
    """One line per finished model: each step's status, and the first refusal's reason."""
    steps = ", ".join(f"{step} {r['status']}" for step, r in rec["steps"].items())
    why = next((f" — {step}: {r.get('reason', '')[:120]}" for step, r in rec["steps"].items()
                if r["status"] not in ("ok", "skipped")), "")
    return f"{rec['model']} ({rec.get('seconds', 0):.0f} s): {steps}{why}"


# ---------------------------------------------------------------- results and the table

def read_results(path: Path) -> dict[str, dict]:
    """The last record per model (later lines win: --redo appends)."""
    out = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec["model"]] = rec
    return out


def converted(rec: dict, step: str) -> bool:
    return rec["steps"].get(step, {}).get("status") == "ok"


def failure_reason(rec: dict, step: str) -> str | None:
    """'<step>: <why>' of what stopped this conversion (the step itself, or the step it needed); for unsupported
    nodes the op types and reasons (the error's first line only counts them)."""
    s = rec["steps"].get(step, {})
    if s.get("status") == "ok":
        return None
    culprit = s.get("blocked_by", step)
    c = rec["steps"].get(culprit, s)
    if c.get("problems"):
        ops = {}
        for p in c["problems"]:
            ops.setdefault(p["op_type"], _generic(p["reason"], numbers=False)[:80])
        return f"{culprit}: unsupported: " + ", ".join(f"{op} ({why})" for op, why in ops.items())
    return f"{culprit}: {c.get('status')}: {c.get('reason', '')}"


def _cell(rec: dict, step: str) -> str:
    s = rec["steps"].get(step, {})
    if s.get("status") != "ok":
        cell = {"skipped": "–", "timeout": "timeout", "crashed": "CRASH"}.get(s.get("status"), "no")
        if s.get("cosine") is not None:  # refused by validation: the agreement it was refused at
            off, moves = s.get("steps_off") or {}, s.get("reference_moves") or {}
            cell += " (refused at " + (f"top1 {s['top1']:.2f}, " if s.get("top1") is not None else "") + \
                f"cos {s['cosine']:.3f}" + (f"; {max(off.values()):.0f} steps off" if off else "") + \
                (f", the QDQ reference itself moves {max(moves.values()):.0f}" if moves else "") + ")"
        return cell
    extra = []
    if step in ("int8", "dynamic_range"):
        if s.get("float_islands"):
            extra.append(f"{s['float_islands']} float islands")
        if s.get("top1") is not None:
            extra.append(f"top1 {s['top1']:.2f}")
        extra.append(f"cos {s.get('cosine', float('nan')):.3f}")
    if s.get("cosine") is not None and s["cosine"] < 0.9:  # the gate passed on atol alone: outputs near zero
        extra.append("SUSPECT: passed at a tiny output scale")
    return "yes" + (f" ({', '.join(extra)})" if extra else "")


def table(results: dict[str, dict]) -> str:
    lines = ["| model | source | float | INT8 | dynamic-range | LiteRT/ORT p50 | convert s | reason not converted |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rec in results.values():
        bench = rec["steps"].get("bench", {})
        ratio = f"{bench['ratio']:.2f}" if bench.get("status") == "ok" else "–"
        seconds = rec["steps"].get("float", {}).get("compile_s")
        reasons: dict[str, list] = {}  # the same cause blocking several conversions is written once
        for step, label in CONVERSIONS.items():
            why = failure_reason(rec, step)
            if why:
                reasons.setdefault(why.split(": ", 1)[1] if why.startswith(step) else why, []).append(label)
        reason = "; ".join(f"[{', '.join(labels)}] {why}".replace("|", "\\|")[:300] for why, labels in reasons.items())
        if rec.get("note"):  # e.g. a record kept from an earlier run: say which
            reason = f"*{rec['note']}*" + (f" {reason}" if reason else "")
        lines.append(f"| {rec['model']} | {rec['source']} | {_cell(rec, 'float')} | {_cell(rec, 'int8')} | "
                     f"{_cell(rec, 'dynamic_range')} | {ratio} | {f'{seconds:.2f}' if seconds else '–'} | {reason} |")
    return "\n".join(lines)


def totals(results: dict[str, dict]) -> dict:
    n = len(results)
    pct = {label: 100.0 * sum(converted(r, step) for r in results.values()) / n if n else 0.0
           for step, label in CONVERSIONS.items()}
    ratios = [r["steps"]["bench"]["ratio"] for r in results.values()
              if r["steps"].get("bench", {}).get("status") == "ok"]
    geomean = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
    return {"models": n, "percent": pct, "geomean_litert_over_ort_p50": geomean, "benchmarked": len(ratios)}


def blocking_reasons(results: dict[str, dict]) -> dict[str, list[str]]:
    """Group what blocks each conversion, across models: '<op type>: <reason>' for unsupported nodes, else the
    failing step and its first line (numbers and names removed); each model listed with the conversions it blocks."""
    groups: dict[str, dict[str, list]] = {}
    for rec in results.values():
        for step, label in CONVERSIONS.items():
            s = rec["steps"].get(step, {})
            if s.get("status") == "ok":
                continue
            culprit = s.get("blocked_by", step)
            c = rec["steps"].get(culprit, s)
            if c.get("problems"):
                keys = {f"{p['op_type']}: {_generic(p['reason'], numbers=False)[:90]}" for p in c["problems"]}
            else:
                cause = c.get("reason", "").split(" (")[0]  # the figures in brackets differ per model, the cause not
                keys = {f"{culprit}: {c.get('status')}: {_generic(cause)}"}
            for k in keys:
                groups.setdefault(k, {}).setdefault(rec["model"], []).append(label)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return {k: [f"{m} ({', '.join(labels)})" for m, labels in v.items()] for k, v in ordered}


def _generic(reason: str, numbers: bool = True) -> str:
    """A reason without model-specific tensor names (and numbers), so equal causes group together."""
    import re
    reason = re.sub(r"(?<![A-Za-z])'[^']*'", "'…'", reason)
    if numbers:
        reason = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", reason)
    return reason[:140]


def report(results: dict[str, dict]) -> str:
    t = totals(results)
    pct = t["percent"]
    geo = t["geomean_litert_over_ort_p50"]
    out = [table(results), "",
           f"{t['models']} models: float {pct['float']:.0f} %, INT8 {pct['INT8']:.0f} %, "
           f"dynamic-range {pct['dynamic-range']:.0f} %; geometric mean LiteRT/ORT p50 ({BENCH_THREADS} threads, "
           f"float) over {t['benchmarked']} models: " + (f"{geo:.2f}" if geo else "–"), "", "Blocking reasons:"]
    for reason, models in blocking_reasons(results).items():
        out.append(f"- {reason} ({len(models)}): {', '.join(models)}")
    return "\n".join(out)


# ---------------------------------------------------------------- command line

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated model names (default: all)")
    ap.add_argument("--quick", action="store_true", help="the fast subset")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines of results (appended)")
    ap.add_argument("--redo", action="store_true", help="run models already in --out again")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--step-timeout", type=float, default=STEP_TIMEOUT, help="seconds per step")
    ap.add_argument("--steps", help="comma-separated steps to run (default: all); a record then holds only these, "
                    "so give it its own --out (e.g. export,optimize,float to find float blockers fast)")
    ap.add_argument("--ray", metavar="auto|ADDRESS", help="run each model as a Ray task: 'auto' (this machine's "
                    "cluster or a new local instance) or a cluster's address; results are the serial run's")
    ap.add_argument("--list", action="store_true", help="list the models")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child_main(args.child, args.models, args.work)
    if args.list:
        for m in coverage_models.MODELS.values():
            print(f"{m.name:32s} {m.source:13s} {m.kind:8s} {'quick' if m.quick else ''}")
        return 0
    names = (args.models.split(",") if args.models else
             coverage_models.QUICK if args.quick else list(coverage_models.MODELS))
    unknown = [n for n in names if n not in coverage_models.MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; see --list")
    if args.steps and set(args.steps.split(",")) - set(STEPS):
        ap.error(f"unknown step(s) {sorted(set(args.steps.split(',')) - set(STEPS))}; steps: {', '.join(STEPS)}")
    if not args.table and args.ray:
        done = read_results(args.out)
        for name in names:
            if name in done and not args.redo:
                print(f"{name}: already in {args.out} (--redo to run again)", flush=True)
        todo = [n for n in names if n not in done or args.redo]

        def write(rec):
            print(_summary(rec), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec, default=str) + "\n")
        print(f"{len(todo)} model(s) as Ray tasks ({args.ray}) …", flush=True)
        try:
            run_models_on_ray(todo, args.ray, timeout=args.step_timeout, on_record=write,
                              steps=tuple(args.steps.split(",")) if args.steps else tuple(STEPS))
        except KeyboardInterrupt:
            print(f"interrupted: the models that finished are in {args.out}", file=sys.stderr)
            return 130
    elif not args.table:
        done = read_results(args.out)
        for name in names:
            if name in done and not args.redo:
                print(f"{name}: already in {args.out} (--redo to run again)", flush=True)
                continue
            started = time.perf_counter()
            print(f"{name} …", flush=True)
            rec = run_model(name, timeout=args.step_timeout, log=lambda msg: print(msg, flush=True),
                            steps=tuple(args.steps.split(",")) if args.steps else tuple(STEPS))
            rec["seconds"] = time.perf_counter() - started
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec, default=str) + "\n")
    results = read_results(args.out)
    print(report({n: results[n] for n in names if n in results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

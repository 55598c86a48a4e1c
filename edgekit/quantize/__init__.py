"""Quantize an ONNX model (static INT8, dynamic INT8, FP16) with an accuracy report, per-layer blame, a search
for the fewest layers to keep in float under an accuracy budget, and a speed check against the float model.

`quantize(...)` is what `edgekit quantize` calls; onnxruntime.quantization does the quantizing itself.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import GateError, UsageError
from edgekit.quantize.build import Plan
from edgekit.quantize.evaluate import Accuracy, NullProgress, Speed

MODES = ("static", "dynamic", "fp16")
FORMATS = ("qdq", "qoperator")
METHODS = ("minmax", "entropy", "percentile")
SPEED = ("search", "check", "off")
SPEEDUP_MARGIN = 0.97  # a layer group is kept in float only if that makes the model at least 3% faster
POOR_DROP = 0.01  # without --max-drop, blame runs by itself when the metric drops more than this

__all__ = ["quantize", "QuantizeResult", "MODES"]


@dataclass
class QuantizeResult:
    path: Path | None
    plan: Plan
    hardware: dict
    accuracy: Accuracy
    speed: Speed | None
    blame: list = field(default_factory=list)
    search: list = field(default_factory=list)
    speed_trials: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "quantization": self.plan.summary(),
                "hardware": self.hardware, "accuracy": self.accuracy.as_dict(),
                "speed": self.speed.as_dict() if self.speed else None,
                "blame": [b.as_dict() for b in self.blame], "search": [t.as_dict() for t in self.search],
                "speed_trials": self.speed_trials, "data": self.data, "notes": self.notes, "warnings": self.warnings}


def quantize(model: str | os.PathLike, output: str | os.PathLike, *, mode: str = "static", fmt: str = "qdq",
             per_channel: bool = True, calibrate_method: str = "minmax", activation_type: str = "auto",
             weight_type: str = "auto", reduce_range: bool | None = None, exclude=(), calib: str | None = None,
             preprocess: str | None = None, eval_data: str | None = None, eval_fraction: float = 0.2,
             max_eval: int = 500, batch_size: int = 8, max_drop: float | None = None, max_float_layers: int = 8,
             blame: bool = False, blame_top: int = 5, speed: str = "search", allow_slower: bool = False,
             threads: int | None = None, seed: int = 0, force: bool = False, progress=None) -> QuantizeResult:
    """Quantize the ONNX file `model` into `output`. Nothing is written when a check or gate fails."""
    from edgekit.fileio import check_output
    from edgekit.onnx_io import save_onnx
    from edgekit.onnx_io import load_onnx
    from edgekit.quantize import build as b
    from edgekit.quantize.calibration import batch_size_for, check_source, make_reader, open_source
    from edgekit.quantize.evaluate import Evaluator
    from edgekit.quantize.hardware import choose
    from edgekit.runtimes import load

    progress = progress or NullProgress()
    _check_arguments(mode, fmt, calibrate_method, activation_type, weight_type, max_drop, speed, eval_fraction)
    out = check_output(output, (model,), force=force)
    original = load_onnx(model)
    reasons = b.is_quantized(original)
    if reasons:
        raise UsageError(f"'{model}' is already quantized: {'; '.join(reasons)}.",
                         hint="Quantize the float32 model it was made from.")
    original_bytes = original.SerializeToString()
    with load(original_bytes, runtime="onnxruntime", provider="cpu") as sess:
        infos = list(sess.inputs)
    warnings: list[str] = []
    notes: list[str] = []

    # ---- data: every problem reported before any calibration starts
    if mode == "static" and calib is None:
        raise UsageError("Static quantization needs calibration data (--calib).",
                         hint="Give an .npz keyed by input name, a folder of .npy files or images, or --calib random "
                              "(which runs but calibrates nothing meaningful).")
    source = open_source(calib, infos, preprocess=preprocess, seed=seed) if calib is not None else None
    if source is not None:
        check_source(source, infos, role="calibration")
    if calib == "random":
        warnings.append("Calibrated on random data (--calib random): the ranges, and so the accuracy of the "
                        "quantized model on real inputs, are not meaningful.")
    batch = batch_size_for(infos, batch_size)
    esource, estart, estop, cal_stop = _evaluation_rows(source, calib, eval_data, infos, preprocess, eval_fraction,
                                                        max_eval, seed, warnings, notes)
    if source is not None and cal_stop // batch == 0:
        raise UsageError(f"The calibration part holds {cal_stop} sample(s), fewer than one batch of {batch}.",
                         hint="Give more calibration samples.")

    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as tmp:
        workdir = Path(tmp)
        fm = b.prepare_float(original, workdir)
        notes += fm.notes
        hw = choose(mode=mode)
        act = hw.activation_type if activation_type == "auto" else activation_type
        wt = hw.weight_type if weight_type == "auto" else weight_type
        rr = hw.reduce_range if reduce_range is None else reduce_range
        if mode == "static" and fmt == "qoperator" and act == "int8" and wt == "uint8":
            raise UsageError("QOperator format does not support int8 activations with uint8 weights.",
                             hint="Use --activation-type uint8 or --weight-type int8.")
        plan = Plan(mode=mode, fmt=fmt, per_channel=per_channel, calibrate_method=calibrate_method,
                    activation_type=act, weight_type=wt, reduce_range=rr,
                    exclude=b.resolve_excludes(fm, exclude))
        evaluator = Evaluator(original_bytes, esource, infos, estart, estop, batch, progress, threads)

        cache = None
        if mode == "static":
            n_batches = cal_stop // batch
            progress.start(f"Calibrating ({calibrate_method}) on {n_batches * batch} samples", n_batches * batch)
            cache = b.calibrate(fm, lambda s, e: make_reader(source, infos, s * batch, e * batch, batch,
                                                              progress.advance), n_batches, calibrate_method, workdir)
            progress.done()
        elif mode == "fp16":
            from edgekit.quantize.blame import _run_exposing
            values = _run_exposing(fm.proto, [o for n in fm.nodes() for o in n.output], evaluator.batches[:4], threads)
            hot = b.fp16_overflow_nodes(fm, {k: float(abs(v).max()) if v.size else 0.0 for k, v in values.items()})
            if hot:
                plan = plan.with_float(*hot)
                notes.append(f"kept {len(hot)} node(s) in float32 whose activations exceed float16's safe range")

        def make(p: Plan) -> bytes:
            return b.build(fm, p, workdir, cache).SerializeToString()

        scores: dict[tuple, Accuracy] = {}

        def score(p: Plan) -> Accuracy:
            if p.keep_float not in scores:
                scores[p.keep_float] = evaluator.score(make(p))
            return scores[p.keep_float]

        progress.start("Scoring the quantized model", None)
        accuracy = score(plan)
        progress.done()
        blame_rows, trials = [], []
        need_blame = blame or (max_drop is not None and accuracy.drop > max_drop) or (
            max_drop is None and accuracy.drop > POOR_DROP)
        if need_blame:
            blame_rows = _blame(fm, plan, make, score, evaluator, blame_top, threads, progress)
        if max_drop is not None and accuracy.drop > max_drop:
            from edgekit.quantize.search import fewest_float_layers
            progress.start(f"Searching layers to keep in float (budget {max_drop:g})", None)
            found = fewest_float_layers(plan, [r.node for r in blame_rows], lambda p: score(p).drop, max_drop,
                                        max_float_layers, progress)
            progress.done()
            trials = found.trials
            if not found.found:
                raise GateError(
                    f"Even with the {max_float_layers} worst layers in float the {accuracy.metric} drop stays above "
                    f"{max_drop:g} (best {min(t.drop for t in trials):.4f}); nothing was written. Worst layers: "
                    + ", ".join(f"{r.label} ({r.local_sqnr_db:.1f} dB)" for r in blame_rows[:5]) + ".",
                    hint="Raise --max-drop or --max-float-layers, try --calibrate-method entropy/percentile, "
                         "or use --mode fp16.")
            plan = found.plan
            accuracy = score(plan)
        elif max_drop is None and accuracy.drop > POOR_DROP:
            warnings.append(f"The {_metric_words(accuracy.metric)} dropped by {accuracy.drop:.4f}; see the blame "
                            f"table, or pass --max-drop to keep the worst layers in float.")

        speed_result, speed_trials = None, []
        if speed != "off":
            speed_result, plan, speed_trials = _speed(fm, plan, make, score, max_drop, accuracy, evaluator,
                                                      original_bytes, speed, threads, progress, notes)
            accuracy = score(plan)
            if speed_result.slower:
                message = (f"The quantized model is slower than the float one on this machine "
                           f"(p50 {speed_result.p50_ms:.3f} ms vs {speed_result.float_p50_ms:.3f} ms)")
                if not allow_slower:
                    raise GateError(message + "; nothing was written.",
                                    hint="Pass --allow-slower to keep it anyway (e.g. for another device), or try "
                                         "another --mode." + (" FP16 runs as float32 plus casts on most CPUs."
                                                              if mode == "fp16" else ""))
                warnings.append(message + " (--allow-slower).")
        else:
            notes.append("speed not checked (--speed off): the result may be slower than the float model")

        final = b.build(fm, plan, workdir, cache)
        for prop in original.metadata_props:
            if not any(p.key == prop.key for p in final.metadata_props):
                final.metadata_props.add(key=prop.key, value=prop.value)
        summary = plan.summary()
        summary.update(hardware=hw.isa, accuracy={"metric": accuracy.metric, "drop": accuracy.drop,
                                                  "samples": accuracy.samples,
                                                  "float_accuracy": accuracy.float_accuracy,
                                                  "accuracy": accuracy.accuracy,
                                                  "outputs": [{k: _json_num(v) for k, v in o.items()}
                                                              for o in accuracy.outputs]},
                       speed=speed_result.as_dict() if speed_result else None,
                       calibration_data="random" if calib == "random" else (str(calib) if calib else None))
        if not b.is_quantized(final):
            warnings.append("No layer is left quantized (every quantizable layer was kept in float, by --exclude, "
                            "the accuracy search or the speed check): the output computes like the float model.")
        modules = {n.name: b.module_path(n) for n in fm.nodes() if n.name in plan.float_nodes}
        summary["float_modules"] = {k: v for k, v in modules.items() if v}
        b.record_summary(final, summary)
        save_onnx(final, out)
    for s in (source, esource):
        if s is not None:
            s.close()
    data = {"calibration": str(calib) if calib else None, "calibration_samples": cal_stop if source else 0,
            "evaluation": str(eval_data) if eval_data else ("held-out part of --calib" if source is not None
                                                            and esource is source else "random"),
            "evaluation_samples": evaluator.samples, "batch": batch, "float_modules": summary["float_modules"]}
    return QuantizeResult(out, plan, hw.as_dict(), accuracy, speed_result, blame_rows, trials, speed_trials, data,
                          notes, warnings)


def _check_arguments(mode, fmt, method, act, wt, max_drop, speed, eval_fraction) -> None:
    problems = []
    if mode not in MODES:
        problems.append(f"--mode '{mode}' (choose {', '.join(MODES)})")
    if fmt not in FORMATS:
        problems.append(f"--format '{fmt}' (choose {', '.join(FORMATS)})")
    if method not in METHODS:
        problems.append(f"--calibrate-method '{method}' (choose {', '.join(METHODS)})")
    for flag, v in (("--activation-type", act), ("--weight-type", wt)):
        if v not in ("auto", "int8", "uint8"):
            problems.append(f"{flag} '{v}' (choose auto, int8, uint8)")
    if max_drop is not None and not (0 <= max_drop < 1):
        problems.append(f"--max-drop {max_drop} (a fraction in [0, 1): 0.01 is one point)")
    if speed not in SPEED:
        problems.append(f"--speed '{speed}' (choose {', '.join(SPEED)})")
    if not (0 < eval_fraction < 1):
        problems.append(f"--eval-fraction {eval_fraction} (between 0 and 1)")
    if problems:
        raise UsageError("Invalid option value(s): " + "; ".join(problems) + ".")


def _evaluation_rows(source, calib, eval_data, infos, preprocess, eval_fraction, max_eval, seed, warnings, notes):
    """→ (evaluation source, start, stop, end of the calibration rows)."""
    from edgekit.quantize.calibration import RandomSource, check_source, open_source
    n = len(source) if source is not None else 0
    if eval_data is not None:
        esource = open_source(eval_data, infos, preprocess=preprocess, seed=seed + 1)
        check_source(esource, infos, role="evaluation")
        return esource, 0, min(len(esource), max_eval), n
    if source is not None and calib != "random" and n >= 10:
        n_eval = max(1, round(n * eval_fraction))
        notes.append(f"accuracy measured on the last {min(n_eval, max_eval)} of {n} samples, held out from "
                     f"calibration (--eval to give other data)")
        return source, n - min(n_eval, max_eval), n, n - n_eval
    if source is not None and calib != "random":
        notes.append(f"only {n} samples: calibration and accuracy use the same data")
        return source, 0, min(n, max_eval), n
    esource = RandomSource(infos, 16, seed + 1)
    if calib != "random":
        warnings.append("No evaluation data (--eval or --calib): accuracy figures are on random inputs and say "
                        "little about real accuracy.")
    return esource, 0, 16, n


def _blame(fm, plan, make, score, evaluator, top, threads, progress):
    from edgekit.quantize.blame import layer_sensitivity
    from edgekit.deps import require
    onnx = require("onnx", "Blaming layers")
    progress.start("Blame: per-layer SQNR", None)
    quant = onnx.load_from_string(make(plan))
    rows = layer_sensitivity(fm.proto, quant, evaluator.batches[:8], threads=threads)
    progress.done()
    candidates = [r for r in rows if r.node not in plan.float_nodes][:top]
    progress.start(f"Blame: keeping each of the {len(candidates)} worst layers in float", len(candidates))
    for r in candidates:
        r.drop_if_float = score(plan.with_float(r.node)).drop
        progress.advance()
    progress.done()
    return rows


def _speed(fm, plan, make, score, max_drop, accuracy, evaluator, original_bytes, mode, threads, progress, notes):
    from edgekit.quantize.evaluate import compare_speed
    from edgekit.quantize.search import op_groups
    feeds = evaluator.batches[0]
    groups = op_groups(fm.proto) if mode == "search" else {}
    if plan.mode == "dynamic" and mode == "search":
        conv = [n.name for n in fm.nodes() if n.op_type == "Conv"]
        if conv:
            groups = {"Conv": conv, **{k: v for k, v in groups.items() if k != "depthwise Conv"}}
    progress.start("Benchmarking against the float model", 1 + len(groups))
    best = compare_speed(original_bytes, make(plan), feeds, threads=threads)
    progress.advance()
    trials = [{"keep_float": "(none)", "p50_ms": best.p50_ms, "float_p50_ms": best.float_p50_ms, "kept": True}]
    budget = max(max_drop if max_drop is not None else 0.0, accuracy.drop)
    for label, nodes in groups.items():
        todo = [n for n in nodes if n not in plan.float_nodes]
        if not todo:
            progress.advance()
            continue
        candidate = plan.with_float(*todo)
        if score(candidate).drop > budget + 1e-9:
            progress.advance()
            continue
        s = compare_speed(original_bytes, make(candidate), feeds, threads=threads)
        # judge by the ratio to float measured in the same rounds, so drifting machine load cancels out
        keep = s.p50_ms / s.float_p50_ms < SPEEDUP_MARGIN * best.p50_ms / best.float_p50_ms
        trials.append({"keep_float": label, "p50_ms": s.p50_ms, "float_p50_ms": s.float_p50_ms, "kept": keep})
        if keep:
            plan, best = candidate, s
            notes.append(f"kept {len(todo)} {label} layer(s) in float: quantizing them made the model slower here")
        progress.advance()
    progress.done()
    return best, plan, trials


def _metric_words(metric: str) -> str:
    return {"accuracy": "task accuracy", "top1": "top-1 agreement with float", "cosine": "output cosine"}[metric]


def _json_num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v

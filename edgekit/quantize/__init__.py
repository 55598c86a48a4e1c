"""Quantize an ONNX model (static INT8, dynamic INT8, FP16) with an accuracy report, per-layer blame, a search
for the fewest layers to keep in float under an accuracy budget, and a speed check against the float model.

`quantize(...)` is what `edgekit quantize` calls; onnxruntime.quantization does the quantizing itself.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
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
    techniques: list[dict] = field(default_factory=list)  # what each accuracy technique ran and gained

    def as_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "quantization": self.plan.summary(),
                "hardware": self.hardware, "accuracy": self.accuracy.as_dict(),
                "speed": self.speed.as_dict() if self.speed else None,
                "blame": [b.as_dict() for b in self.blame], "search": [t.as_dict() for t in self.search],
                "speed_trials": self.speed_trials, "data": self.data, "notes": self.notes, "warnings": self.warnings,
                "techniques": self.techniques}


def quantize(model: str | os.PathLike, output: str | os.PathLike, *, mode: str = "static", fmt: str = "qdq",
             per_channel: bool = True, calibrate_method: str = "minmax", activation_type: str = "auto",
             weight_type: str = "auto", reduce_range: bool | None = None, exclude=(), calib: str | None = None,
             preprocess: str | None = None, eval_data: str | None = None, eval_fraction: float = 0.2,
             max_eval: int = 500, batch_size: int = 8, max_drop: float | None = None, max_float_layers: int = 8,
             blame: bool = False, blame_top: int = 5, equalize: bool | None = None,
             smoothquant: bool | None = None, bias_correction: bool | None = None, speed: str = "search",
             allow_slower: bool = False,
             threads: int | None = None, seed: int = 0, force: bool = False, progress=None) -> QuantizeResult:
    """Quantize the ONNX file `model` into `output`. Nothing is written when a check or gate fails.

    Static mode's accuracy techniques (`equalize`, `smoothquant`, `bias_correction`): True runs it (bias correction
    and SmoothQuant's strength are still kept only where they improve the metric), False never, None (default) only
    when `max_drop` is given and not met, before any tensor is kept in float. Each run is recorded in
    `QuantizeResult.techniques` and the model's `edgekit.quantization` metadata with the metric before and after.
    """
    from edgekit.deps import require
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
            fills = b.fill_tensors(cache) if fmt == "qdq" else ()
            if fills:  # mask fills (finfo.min): no int8 step holds them and the values they mask
                plan = plan.with_float_tensors(*fills)
                notes.append(f"kept {len(fills)} tensor(s) in float32 whose calibrated range reaches "
                             f"{b.FILL_MAGNITUDE:g} (attention-mask fills; int8 cannot hold them): {', '.join(fills)}")
        elif mode == "fp16":
            from edgekit.quantize.blame import _run_exposing
            values = _run_exposing(fm.proto, [o for n in fm.nodes() for o in n.output], evaluator.batches[:4], threads)
            hot = b.fp16_overflow_nodes(fm, {k: float(abs(v).max()) if v.size else 0.0 for k, v in values.items()})
            if hot:
                plan = plan.with_float(*hot)
                notes.append(f"kept {len(hot)} node(s) in float32 whose activations exceed float16's safe range")

        variants = _Variants(fm, workdir, evaluator, threads, progress,
                             (lambda f, w: _calibrate(b, f, w, source, infos, batch, cal_stop, calibrate_method,
                                                      progress)) if mode == "static" else None,
                             lambda: _calibration_batches(source, infos, batch, cal_stop, evaluator))
        variants.base_cache = cache
        amplified = []
        if mode == "static" and fmt == "qdq":  # rounding a normalisation turns into many output steps (ViT)
            from edgekit.quantize.amplifiers import AMPLIFY_STEPS, amplified_inputs
            amplified = amplified_inputs(fm.proto, cache, variants.calibration_batches(), skip=plan.float_tensors,
                                         threads=threads)
            if amplified:
                plan = plan.with_float_tensors(*(a.tensor for a in amplified))
                notes.append(f"kept {len(amplified)} tensor(s) in float32 whose one-step rounding moves a "
                             f"normalisation's output by more than {AMPLIFY_STEPS:g} of its steps (measured on the "
                             "calibration data): " + ", ".join(f"{a.tensor} (x{a.gain:.1f} at {a.norm})"
                                                               for a in amplified))
        built: dict[Plan, bytes] = {}

        def make(p: Plan) -> bytes:
            if p not in built:
                vfm, vcache = variants.get(p)
                proto = b.build(vfm, replace(p, bias_correct=False), workdir, vcache)
                if p.bias_correct:
                    from edgekit.quantize.bias_correction import correct_biases
                    proto, _ = correct_biases(vfm.proto, proto, variants.calibration_batches(), threads=threads)
                if len(built) > 64:  # bounded memory over a long search
                    built.clear()
                built[p] = proto.SerializeToString()
            return built[p]

        scores: dict[Plan, Accuracy] = {}

        def score(p: Plan) -> Accuracy:
            if p not in scores:
                scores[p] = evaluator.score(make(p))
            return scores[p]

        progress.start("Scoring the quantized model", None)
        accuracy = score(plan)
        progress.done()
        tensor_level = mode == "static" and fmt == "qdq"
        techniques: list[dict] = []
        if mode == "static":
            auto = max_drop is not None and accuracy.drop > max_drop
            plan = _techniques(plan, score, variants, max_drop, auto, equalize, smoothquant,
                               bias_correction and fmt == "qdq" if bias_correction is not None
                               else (None if fmt == "qdq" else False),
                               techniques, notes, progress)
            accuracy = score(plan)
        blame_rows, trials = [], []
        need_blame = blame or (max_drop is not None and accuracy.drop > max_drop) or (
            max_drop is None and accuracy.drop > POOR_DROP)
        if need_blame:
            blame_rows = _blame(fm, plan, make, score, evaluator, blame_top, threads, progress, variants,
                                tensor_level)
        if max_drop is not None and accuracy.drop > max_drop:
            from edgekit.quantize.search import fewest_float_layers
            what = "tensors" if tensor_level else "layers"
            progress.start(f"Searching {what} to keep in float (budget {max_drop:g})", None)
            before = accuracy
            found = fewest_float_layers(plan, [r.key for r in blame_rows], lambda p: score(p).drop, max_drop,
                                        max_float_layers, progress, tensors=tensor_level)
            progress.done()
            trials = found.trials
            if not found.found:
                tried = "; ".join(f"{t['technique']} {'applied' if t['applied'] else 'not kept'}"
                                  for t in techniques)
                raise GateError(
                    f"Even with the {max_float_layers} worst {what} in float the {accuracy.metric} drop stays above "
                    f"{max_drop:g} (best {min(t.drop for t in trials):.4f}); nothing was written. Worst {what}: "
                    + ", ".join(f"{r.label} ({r.local_sqnr_db:.1f} dB)" for r in blame_rows[:5]) + "."
                    + (f" Tried first: {tried}." if tried else ""),
                    hint="Raise --max-drop or --max-float-layers, try --calibrate-method entropy/percentile, "
                         "or use --mode fp16.")
            plan = found.plan
            accuracy = score(plan)
            kept = plan.float_tensors if tensor_level else plan.keep_float
            techniques.append(_step(f"float {what}", True, before, accuracy,
                                    f"{len(kept)} kept in float: " + ", ".join(
                                        _label_of(k, blame_rows) for k in kept)))
        elif max_drop is None and accuracy.drop > POOR_DROP:
            warnings.append(f"The {_metric_words(accuracy.metric)} dropped by {accuracy.drop:.4f}; see the blame "
                            f"table, or pass --max-drop to keep the worst layers in float"
                            + (" (it tries --equalize, --smoothquant and --bias-correction first)."
                               if mode == "static" else "."))

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

        final = require("onnx", "Quantizing ONNX models").load_from_string(make(plan))
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
        if tensor_level:
            summary["float_tensor_modules"] = {t: _label_of(t, blame_rows) for t in plan.float_tensors}
        summary["techniques"] = techniques
        if amplified:
            summary["amplified_tensors"] = [a.as_dict() for a in amplified]
        b.record_summary(final, summary)
        save_onnx(final, out)
    for s in (source, esource):
        if s is not None:
            s.close()
    data = {"calibration": str(calib) if calib else None, "calibration_samples": cal_stop if source else 0,
            "evaluation": str(eval_data) if eval_data else ("held-out part of --calib" if source is not None
                                                            and esource is source else "random"),
            "evaluation_samples": evaluator.samples, "batch": batch, "float_modules": summary["float_modules"],
            "float_tensor_modules": summary.get("float_tensor_modules", {})}
    return QuantizeResult(out, plan, hw.as_dict(), accuracy, speed_result, blame_rows, trials, speed_trials, data,
                          notes, warnings, techniques)


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


def _blame(fm, plan, make, score, evaluator, top, threads, progress, variants, tensor_level):
    from edgekit.quantize.blame import layer_sensitivity, tensor_sensitivity
    from edgekit.deps import require
    onnx = require("onnx", "Blaming layers")
    what = "tensor" if tensor_level else "layer"
    progress.start(f"Blame: per-{what} SQNR", None)
    quant = onnx.load_from_string(make(plan))
    vfm, _ = variants.get(plan)
    if tensor_level:
        rows = tensor_sensitivity(vfm.proto, quant, evaluator.batches[:8], threads=threads)
        candidates = [r for r in rows if r.tensor not in plan.float_tensors][:top]
    else:
        rows = layer_sensitivity(vfm.proto, quant, evaluator.batches[:8], threads=threads)
        candidates = [r for r in rows if r.node not in plan.float_nodes][:top]
    progress.done()
    progress.start(f"Blame: keeping each of the {len(candidates)} worst {what}s in float", len(candidates))
    for r in candidates:
        r.drop_if_float = score(plan.with_float_tensors(r.tensor) if tensor_level
                                else plan.with_float(r.node)).drop
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
    return {"accuracy": "task accuracy", "top1": "top-1 agreement with float", "cosine": "output cosine",
            "map50": "mAP@0.5", "box_agreement": "matched-box agreement with float"}[metric]


def _json_num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


# ---------------------------------------------------------------- accuracy techniques (static INT8)

SMOOTH_ALPHAS = (0.5, 0.65, 0.8)


class _Variants:
    """Float models after equalization and/or SmoothQuant, each checked exact against the original and
    calibrated once (lazily), keyed by (equalize, smooth_alpha)."""

    def __init__(self, fm, workdir, evaluator, threads, progress, calibrate, calibration_batches):
        self.fm, self.workdir, self.evaluator, self.threads = fm, workdir, evaluator, threads
        self.progress, self._calibrate, self._cal_batches = progress, calibrate, calibration_batches
        self.base_cache = None
        self.models: dict[tuple, tuple] = {}
        self.details: dict[tuple, object] = {}  # key → Rescaled (pairs, declined) or a refusal string
        self._batches = None
        self._absmax = None

    def calibration_batches(self) -> list[dict]:
        if self._batches is None:
            self._batches = self._cal_batches()
        return self._batches

    def rescaled(self, equalize: bool, alpha: float | None):
        """→ (Rescaled or None, refusal reason or None) for this transform of the float model; the pairs listed
        are SmoothQuant's when `alpha` is given, else equalization's."""
        from edgekit.quantize.equalize import check_exact, equalize as cle, smooth, smoothing_inputs
        key = (equalize, alpha)
        if key in self.details:
            d = self.details[key]
            return (None, d) if isinstance(d, str) else (d, None)
        result = None
        proto = self.fm.proto
        if equalize:
            result = cle(proto)
            proto = result.proto
        if alpha is not None:
            if self._absmax is None:
                from edgekit.quantize.blame import _run_exposing
                from edgekit.quantize.equalize import channel_absmax
                names = smoothing_inputs(self.fm.proto)
                values = _run_exposing(self.fm.proto, names, self.calibration_batches(), self.threads)
                self._absmax = {k: channel_absmax(v) for k, v in values.items()}
            result = smooth(proto, self._absmax, alpha)  # equalization keeps the pairs' tensor names
            proto = result.proto
        reason = check_exact(self.fm.proto, proto)
        self.details[key] = reason if reason else result
        return (None, reason) if reason else (result, None)

    def get(self, plan):
        key = (plan.equalize, plan.smooth_alpha)
        if key == (False, None):
            return self.fm, self.base_cache
        if key not in self.models:
            from edgekit.onnx_io import save_onnx
            from edgekit.quantize.build import FloatModel
            result, reason = self.rescaled(*key)
            if reason:
                raise ValueError(reason)
            folder = self.workdir / f"variant-{len(self.models)}"
            folder.mkdir()
            path = folder / "float.onnx"
            save_onnx(result.proto, path)
            vfm = FloatModel(path, result.proto)
            cache = self._calibrate(vfm, folder) if self._calibrate else None
            self.models[key] = (vfm, cache)
        return self.models[key]


def _calibrate(b, fm, folder, source, infos, batch, cal_stop, method, progress):
    from edgekit.quantize.calibration import make_reader
    n_batches = cal_stop // batch
    progress.start(f"Calibrating the rescaled model ({method})", n_batches * batch)
    cache = b.calibrate(fm, lambda s, e: make_reader(source, infos, s * batch, e * batch, batch, progress.advance),
                        n_batches, method, folder)
    progress.done()
    return cache


def _calibration_batches(source, infos, batch, cal_stop, evaluator, limit: int = 16) -> list[dict]:
    """Calibration rows as feeds (bias correction, SmoothQuant's ranges); evaluation rows without --calib."""
    if source is None:
        return evaluator.batches[:limit]
    from edgekit.quantize.calibration import iter_batches
    return [f for f, _ in iter_batches(source, infos, 0, min(cal_stop, limit * batch), batch)]


def _metric_value(acc: Accuracy) -> float:
    return acc.accuracy if acc.accuracy is not None else 1.0 - acc.drop


def _step(name: str, applied: bool, before: Accuracy, after: Accuracy | None, detail: str) -> dict:
    """One row of the techniques report: the metric before and after, and what was done or why not."""
    return {"technique": name, "applied": applied, "metric": before.metric,
            "before": _metric_value(before), "after": _metric_value(after) if after is not None else None,
            "gain": (_metric_value(after) - _metric_value(before)) if after is not None else None,
            "detail": detail}


def _techniques(plan, score, variants, max_drop, auto, equalize, smoothquant, bias_correction, techniques, notes,
                progress):
    """Equalization, SmoothQuant, bias correction in that order, each run when asked for (True) or when `auto`
    and the budget is still not met; a technique that was not asked for is kept only if it improves the metric."""
    def met(p) -> bool:
        return max_drop is not None and score(p).drop <= max_drop

    def wanted(flag) -> bool:
        return flag is True or (flag is None and auto and not met(plan))

    if wanted(equalize):
        progress.start("Cross-layer equalization", None)
        before = score(plan)
        result, reason = variants.rescaled(True, None)
        if reason or not result.pairs:
            why = reason or ("no exact Conv/Gemm/MatMul pair"
                             + (f" ({'; '.join(result.declined[:3])})" if result.declined else ""))
            techniques.append(_step("equalization", False, before, None, f"skipped: {why}"))
        else:
            candidate = replace(plan, equalize=True)
            after = score(candidate)
            keep = equalize is True or after.drop < before.drop
            detail = f"{len(result.pairs)} pair(s): {', '.join(result.pairs[:6])}" + (
                f"; declined: {'; '.join(result.declined[:3])}" if result.declined else "")
            techniques.append(_step("equalization", keep, before, after, detail))
            plan = candidate if keep else plan
        progress.done()
    if wanted(smoothquant):
        progress.start("SmoothQuant", len(SMOOTH_ALPHAS))
        before = score(plan)
        tried = []
        for alpha in SMOOTH_ALPHAS:
            result, reason = variants.rescaled(plan.equalize, alpha)
            progress.advance()
            if reason:
                tried.append((alpha, None, reason))
                continue
            if not result.pairs:
                tried.append((alpha, None, "no MatMul/Gemm input with outlier channels"))
                break
            tried.append((alpha, score(replace(plan, smooth_alpha=alpha)), result))
        scored = [t for t in tried if t[1] is not None]
        if not scored:
            techniques.append(_step("smoothquant", False, before, None, f"skipped: {tried[0][2]}"))
        else:
            alpha, after, result = min(scored, key=lambda t: t[1].drop)
            keep = after.drop < before.drop
            techniques.append(_step("smoothquant", keep, before, after,
                                    f"alpha {alpha:g} (of {', '.join(f'{t[0]:g}' for t in scored)}, by the metric) "
                                    f"on {', '.join(result.pairs[:6])}"
                                    + ("" if keep else "; not kept: no gain")))
            plan = replace(plan, smooth_alpha=alpha) if keep else plan
        progress.done()
    if wanted(bias_correction):
        progress.start("Bias correction", None)
        before = score(plan)
        candidate = replace(plan, bias_correct=True)
        after = score(candidate)
        keep = after.drop < before.drop
        techniques.append(_step("bias correction", keep, before, after,
                                "empirical, per output channel, on the calibration data"
                                + ("" if keep else "; not kept: no gain")))
        plan = candidate if keep else plan
        progress.done()
    return plan


def _label_of(tensor: str, rows) -> str:
    row = next((r for r in rows if r.key == tensor), None)
    return f"{row.label} ({tensor})" if row is not None and row.label != tensor else tensor

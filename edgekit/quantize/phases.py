"""The phases of one `edgekit.quantize.quantize` call, in the order it runs them: open (refuse what can never
work), data, prepare, calibrate, rescaled variants, score and techniques, search or gate, speed, write. `Run` carries
the options and what each phase found to the phases after it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekit.errors import GateError, UsageError
from edgekit.quantize.accuracy_techniques import Variants, run_techniques, step
from edgekit.quantize.build import Plan
from edgekit.quantize.evaluate import Accuracy, Speed
from edgekit.quantize.options import AccuracyGate, Calibration, Scheme, SpeedPolicy, Techniques

SPEEDUP_MARGIN = 0.97  # a layer group is kept in float only if that makes the model at least 3% faster
POOR_DROP = 0.01  # without --max-drop, blame runs by itself when the metric drops more than this


@dataclass(eq=False)
class Run:
    """One quantize() call: its options, and what each phase found for the phases after it. `make` and `score`
    build and measure a plan once each, so the techniques, the search and the speed check share their work."""
    model: str | os.PathLike
    mode: str
    scheme: Scheme
    calibration: Calibration
    gate: AccuracyGate
    wanted: Techniques
    speed: SpeedPolicy
    exclude: tuple
    seed: int
    progress: object
    out: Path
    original: object
    original_bytes: bytes
    infos: list
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    source: object = None  # calibration rows (None without calibration data)
    esource: object = None  # evaluation rows: another file, the held-out tail of `source`, or random
    estart: int = 0
    estop: int = 0
    cal_stop: int = 0  # calibration uses source rows [0, cal_stop)
    batch: int = 1
    workdir: Path | None = None
    fm: object = None  # the float model prepared for quantizing (edgekit.quantize.build.FloatModel)
    hw: object = None
    plan: Plan | None = None
    evaluator: object = None
    cache: object = None  # the float model's calibrated ranges (static)
    variants: object = None
    amplified: list = field(default_factory=list)
    accuracy: Accuracy | None = None
    techniques: list = field(default_factory=list)  # report rows, edgekit.quantization's "techniques"
    blame_rows: list = field(default_factory=list)
    trials: list = field(default_factory=list)
    speed_result: Speed | None = None
    speed_trials: list = field(default_factory=list)
    built: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)

    @property
    def tensor_level(self) -> bool:
        """Static QDQ keeps single tensors in float; the other forms keep whole nodes."""
        return self.mode == "static" and self.scheme.fmt == "qdq"

    def make(self, p: Plan) -> bytes:
        if p not in self.built:
            from edgekit.quantize import build as b
            vfm, vcache = self.variants.get(p)
            proto = b.build(vfm, replace(p, bias_correct=False), self.workdir, vcache)
            if p.bias_correct:
                from edgekit.quantize.bias_correction import correct_biases
                proto, _ = correct_biases(vfm.proto, proto, self.variants.calibration_batches(),
                                          threads=self.speed.threads)
            if len(self.built) > 64:  # bounded memory over a long search
                self.built.clear()
            self.built[p] = proto.SerializeToString()
        return self.built[p]

    def score(self, p: Plan) -> Accuracy:
        if p not in self.scores:
            self.scores[p] = self.evaluator.score(self.make(p))
        return self.scores[p]

    def over_budget(self) -> bool:
        return self.gate.max_drop is not None and self.accuracy.drop > self.gate.max_drop


def open_run(model, output, mode, groups, exclude, seed, force, progress) -> Run:
    """Refuse before any work what can never succeed: an output that would overwrite the input, a model that is
    already quantized."""
    from edgekit.fileio import check_output
    from edgekit.onnx_io import load_onnx
    from edgekit.quantize import build as b
    from edgekit.runtimes import load
    out = check_output(output, (model,), force=force)
    original = load_onnx(model)
    reasons = b.is_quantized(original)
    if reasons:
        raise UsageError(f"'{model}' is already quantized: {'; '.join(reasons)}.",
                         hint="Quantize the float32 model it was made from.")
    original_bytes = original.SerializeToString()
    with load(original_bytes, runtime="onnxruntime", provider="cpu") as sess:
        infos = list(sess.inputs)
    return Run(model, mode, groups[Scheme], groups[Calibration], groups[AccuracyGate], groups[Techniques],
                groups[SpeedPolicy], tuple(exclude), seed, progress, out, original, original_bytes, infos)


def read_data(run: Run) -> None:
    """Open the calibration and evaluation rows and report every problem with them before any calibration starts:
    a bad file found after minutes of calibrating wastes them."""
    from edgekit.quantize.calibration import batch_size_for, check_source, open_source
    cal = run.calibration
    if run.mode == "static" and cal.data is None:
        raise UsageError("Static quantization needs calibration data (--calib).",
                         hint="Give an .npz keyed by input name, a folder of .npy files or images, or --calib random "
                              "(which runs but calibrates nothing meaningful).")
    if cal.data is not None:
        run.source = open_source(cal.data, run.infos, preprocess=cal.preprocess, seed=run.seed)
        check_source(run.source, run.infos, role="calibration")
    if cal.data == "random":
        run.warnings.append("Calibrated on random data (--calib random): the ranges, and so the accuracy of the "
                            "quantized model on real inputs, are not meaningful.")
    run.batch = batch_size_for(run.infos, cal.batch_size)
    run.esource, run.estart, run.estop, run.cal_stop = _evaluation_rows(run)
    if run.source is not None and run.cal_stop // run.batch == 0:
        raise UsageError(f"The calibration part holds {run.cal_stop} sample(s), fewer than one batch of {run.batch}.",
                         hint="Give more calibration samples.")


def _evaluation_rows(run: Run):
    """→ (evaluation source, start, stop, end of the calibration rows)."""
    from edgekit.quantize.calibration import RandomSource, check_source, open_source
    source, calib, gate = run.source, run.calibration.data, run.gate
    n = len(source) if source is not None else 0
    if gate.eval_data is not None:
        esource = open_source(gate.eval_data, run.infos, preprocess=run.calibration.preprocess, seed=run.seed + 1)
        check_source(esource, run.infos, role="evaluation")
        return esource, 0, min(len(esource), gate.max_eval), n
    if source is not None and calib != "random" and n >= 10:
        n_eval = max(1, round(n * gate.eval_fraction))
        run.notes.append(f"accuracy measured on the last {min(n_eval, gate.max_eval)} of {n} samples, held out from "
                         f"calibration (--eval to give other data)")
        return source, n - min(n_eval, gate.max_eval), n, n - n_eval
    if source is not None and calib != "random":
        run.notes.append(f"only {n} samples: calibration and accuracy use the same data")
        return source, 0, min(n, gate.max_eval), n
    esource = RandomSource(run.infos, 16, run.seed + 1)
    if calib != "random":
        run.warnings.append("No evaluation data (--eval or --calib): accuracy figures are on random inputs and say "
                            "little about real accuracy.")
    return esource, 0, 16, n


def prepare(run: Run, workdir: Path) -> None:
    """The float model made ready for quantizing, the integer types this CPU runs fastest ('auto'), the first plan
    and the evaluator that scores every candidate against the original model."""
    from edgekit.quantize import build as b
    from edgekit.quantize.evaluate import Evaluator
    from edgekit.quantize.hardware import choose
    s = run.scheme
    run.workdir = workdir
    run.fm = b.prepare_float(run.original, workdir)
    run.notes += run.fm.notes
    run.hw = hw = choose(mode=run.mode)
    act = hw.activation_type if s.activation_type == "auto" else s.activation_type
    wt = hw.weight_type if s.weight_type == "auto" else s.weight_type
    rr = hw.reduce_range if s.reduce_range is None else s.reduce_range
    if run.mode == "static" and s.fmt == "qoperator" and act == "int8" and wt == "uint8":
        raise UsageError("QOperator format does not support int8 activations with uint8 weights.",
                         hint="Use --activation-type uint8 or --weight-type int8.")
    run.plan = Plan(mode=run.mode, fmt=s.fmt, per_channel=s.per_channel, calibrate_method=run.calibration.method,
                    activation_type=act, weight_type=wt, reduce_range=rr,
                    exclude=b.resolve_excludes(run.fm, run.exclude))
    run.evaluator = Evaluator(run.original_bytes, run.esource, run.infos, run.estart, run.estop, run.batch,
                              run.progress, run.speed.threads)


def calibrate_ranges(run: Run) -> None:
    """Static: calibrate the float model's ranges, and keep in float what int8 cannot hold (attention-mask fills).
    FP16: keep in float32 the nodes whose activations overflow float16. Dynamic needs neither."""
    from edgekit.quantize import build as b
    progress, method = run.progress, run.calibration.method
    if run.mode == "static":
        n_batches = run.cal_stop // run.batch
        run.cache = _calibrate(b, run.fm, run.workdir, run.source, run.infos, run.batch, run.cal_stop, method,
                               progress, label=f"Calibrating ({method}) on {n_batches * run.batch} samples")
        fills = b.fill_tensors(run.cache) if run.scheme.fmt == "qdq" else ()
        if fills:  # mask fills (finfo.min): no int8 step holds them and the values they mask
            run.plan = run.plan.with_float_tensors(*fills)
            run.notes.append(f"kept {len(fills)} tensor(s) in float32 whose calibrated range reaches "
                             f"{b.FILL_MAGNITUDE:g} (attention-mask fills; int8 cannot hold them): {', '.join(fills)}")
    elif run.mode == "fp16":
        from edgekit.quantize.blame import _run_exposing
        fm = run.fm
        values = _run_exposing(fm.proto, [o for n in fm.nodes() for o in n.output], run.evaluator.batches[:4],
                               run.speed.threads)
        hot = b.fp16_overflow_nodes(fm, {k: float(abs(v).max()) if v.size else 0.0 for k, v in values.items()})
        if hot:
            run.plan = run.plan.with_float(*hot)
            run.notes.append(f"kept {len(hot)} node(s) in float32 whose activations exceed float16's safe range")


def rescaled_variants(run: Run) -> None:
    """Set up the rescaled float models the techniques may ask for (made lazily), and, for static QDQ, keep in
    float the tensors whose one-step rounding a normalisation amplifies into many output steps (ViT)."""
    from edgekit.quantize import build as b
    cal, threads = run.calibration, run.speed.threads
    recalibrate = (lambda f, w: _calibrate(b, f, w, run.source, run.infos, run.batch, run.cal_stop, cal.method,
                                           run.progress)) if run.mode == "static" else None
    run.variants = Variants(run.fm, run.workdir, run.evaluator, threads, run.progress, recalibrate,
                             lambda: _calibration_batches(run.source, run.infos, run.batch, run.cal_stop,
                                                          run.evaluator))
    run.variants.base_cache = run.cache
    if run.tensor_level:
        from edgekit.quantize.amplifiers import AMPLIFY_STEPS, amplified_inputs
        run.amplified = amplified_inputs(run.fm.proto, run.cache, run.variants.calibration_batches(),
                                         skip=run.plan.float_tensors, threads=threads)
        if run.amplified:
            run.plan = run.plan.with_float_tensors(*(a.tensor for a in run.amplified))
            run.notes.append(f"kept {len(run.amplified)} tensor(s) in float32 whose one-step rounding moves a "
                             f"normalisation's output by more than {AMPLIFY_STEPS:g} of its steps (measured on the "
                             "calibration data): " + ", ".join(f"{a.tensor} (x{a.gain:.1f} at {a.norm})"
                                                               for a in run.amplified))


def score_and_techniques(run: Run) -> None:
    """Score the plain quantized model, then (static) run the accuracy techniques that were asked for, or that
    the budget needs, before the search keeps anything in float: they cost no speed, float layers do."""
    run.progress.start("Scoring the quantized model", None)
    run.accuracy = run.score(run.plan)
    run.progress.done()
    if run.mode != "static":
        return
    qdq, t = run.scheme.fmt == "qdq", run.wanted
    bias = (t.bias_correction and qdq) if t.bias_correction is not None else (None if qdq else False)
    run.plan = run_techniques(run.plan, run.score, run.variants, run.gate.max_drop, run.over_budget(), t.equalize,
                              t.smoothquant, bias, run.techniques, run.progress)
    run.accuracy = run.score(run.plan)


def search_or_warn(run: Run) -> None:
    """Blame the layers when asked or when the metric dropped; under a budget (`max_drop`) keep the fewest of the
    worst in float to meet it, or refuse the model (GateError); without one, warn about a poor result."""
    gate, progress = run.gate, run.progress
    if gate.blame or run.over_budget() or (gate.max_drop is None and run.accuracy.drop > POOR_DROP):
        run.blame_rows = _blame(run.fm, run.plan, run.make, run.score, run.evaluator, gate.blame_top,
                                run.speed.threads, progress, run.variants, run.tensor_level)
    if run.over_budget():
        from edgekit.quantize.search import fewest_float_layers
        what = "tensors" if run.tensor_level else "layers"
        progress.start(f"Searching {what} to keep in float (budget {gate.max_drop:g})", None)
        before = run.accuracy
        found = fewest_float_layers(run.plan, [r.key for r in run.blame_rows], lambda p: run.score(p).drop,
                                    gate.max_drop, gate.max_float_layers, progress, tensors=run.tensor_level)
        progress.done()
        run.trials = found.trials
        if not found.found:
            tried = "; ".join(f"{t['technique']} {'applied' if t['applied'] else 'not kept'}"
                              for t in run.techniques)
            raise GateError(
                f"Even with the {gate.max_float_layers} worst {what} in float the {run.accuracy.metric} drop stays "
                f"above {gate.max_drop:g} (best {min(t.drop for t in run.trials):.4f}); nothing was written. Worst "
                f"{what}: " + ", ".join(f"{r.label} ({r.local_sqnr_db:.1f} dB)" for r in run.blame_rows[:5]) + "."
                + (f" Tried first: {tried}." if tried else ""),
                hint="Raise --max-drop or --max-float-layers, try --calibrate-method entropy/percentile, "
                     "or use --mode fp16.")
        run.plan = found.plan
        run.accuracy = run.score(run.plan)
        kept = run.plan.float_tensors if run.tensor_level else run.plan.keep_float
        run.techniques.append(step(f"float {what}", True, before, run.accuracy, f"{len(kept)} kept in float: "
                                    + ", ".join(_label_of(k, run.blame_rows) for k in kept)))
    elif gate.max_drop is None and run.accuracy.drop > POOR_DROP:
        run.warnings.append(f"The {_metric_words(run.accuracy.metric)} dropped by {run.accuracy.drop:.4f}; see the "
                            f"blame table, or pass --max-drop to keep the worst layers in float"
                            + (" (it tries --equalize, --smoothquant and --bias-correction first)."
                               if run.mode == "static" else "."))


def check_speed(run: Run) -> None:
    """Benchmark against the float model (and, with 'search', keep slow-to-quantize layer types in float): a
    quantized model slower than float is refused unless `allow_slower`, since speed is why one quantizes."""
    policy = run.speed
    if policy.mode == "off":
        run.notes.append("speed not checked (--speed off): the result may be slower than the float model")
        return
    run.speed_result, run.plan, run.speed_trials = _speed(
        run.fm, run.plan, run.make, run.score, run.gate.max_drop, run.accuracy, run.evaluator, run.original_bytes,
        policy.mode, policy.threads, run.progress, run.notes)
    run.accuracy = run.score(run.plan)
    sr = run.speed_result
    if sr.slower:
        message = (f"The quantized model is slower than the float one on this machine "
                   f"(p50 {sr.p50_ms:.3f} ms vs {sr.float_p50_ms:.3f} ms)")
        if not policy.allow_slower:
            raise GateError(message + "; nothing was written.",
                            hint="Pass --allow-slower to keep it anyway (e.g. for another device), or try "
                                 "another --mode." + (" FP16 runs as float32 plus casts on most CPUs."
                                                      if run.mode == "fp16" else ""))
        run.warnings.append(message + " (--allow-slower).")


def write(run: Run) -> dict:
    """Write the chosen model with the original's metadata and the `edgekit.quantization` summary (what was kept
    in float and why, the accuracy, the speed); → that summary."""
    from edgekit.deps import require
    from edgekit.onnx_io import save_onnx
    from edgekit.quantize import build as b
    plan, accuracy, calib = run.plan, run.accuracy, run.calibration.data
    final = require("onnx", "Quantizing ONNX models").load_from_string(run.make(plan))
    for prop in run.original.metadata_props:
        if not any(p.key == prop.key for p in final.metadata_props):
            final.metadata_props.add(key=prop.key, value=prop.value)
    summary = plan.summary()
    summary.update(hardware=run.hw.isa, accuracy={"metric": accuracy.metric, "drop": accuracy.drop,
                                                  "samples": accuracy.samples,
                                                  "float_accuracy": accuracy.float_accuracy,
                                                  "accuracy": accuracy.accuracy,
                                                  "outputs": [{k: _json_num(v) for k, v in o.items()}
                                                              for o in accuracy.outputs]},
                   speed=run.speed_result.as_dict() if run.speed_result else None,
                   calibration_data="random" if calib == "random" else (str(calib) if calib else None))
    if not b.is_quantized(final):
        run.warnings.append("No layer is left quantized (every quantizable layer was kept in float, by --exclude, "
                            "the accuracy search or the speed check): the output computes like the float model.")
    modules = {n.name: b.module_path(n) for n in run.fm.nodes() if n.name in plan.float_nodes}
    summary["float_modules"] = {k: v for k, v in modules.items() if v}
    if run.tensor_level:
        summary["float_tensor_modules"] = {t: _label_of(t, run.blame_rows) for t in plan.float_tensors}
    summary["techniques"] = run.techniques
    if run.amplified:
        summary["amplified_tensors"] = [a.as_dict() for a in run.amplified]
    b.record_summary(final, summary)
    save_onnx(final, run.out)
    return summary


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


def _calibrate(b, fm, folder, source, infos, batch, cal_stop, method, progress, label=None):
    """→ the calibrated ranges of `fm` on the calibration rows (the float model's, or a rescaled variant's)."""
    from edgekit.quantize.calibration import make_reader
    n_batches = cal_stop // batch
    progress.start(label or f"Calibrating the rescaled model ({method})", n_batches * batch)
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


def _label_of(tensor: str, rows) -> str:
    row = next((r for r in rows if r.key == tensor), None)
    return f"{row.label} ({tensor})" if row is not None and row.label != tensor else tensor

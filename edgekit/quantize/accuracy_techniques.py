"""Static INT8's accuracy techniques, tried before any layer is kept in float because they cost no speed:
cross-layer equalization and SmoothQuant (exact rescalings of the float model, edgekit.quantize.equalize) and
empirical bias correction (edgekit.quantize.bias_correction), each reported with the metric before and after.
"""
from __future__ import annotations

from dataclasses import replace

from edgekit.quantize.evaluate import Accuracy

SMOOTH_ALPHAS = (0.5, 0.65, 0.8)


class Variants:
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


def _metric_value(acc: Accuracy) -> float:
    return acc.accuracy if acc.accuracy is not None else 1.0 - acc.drop


def step(name: str, applied: bool, before: Accuracy, after: Accuracy | None, detail: str) -> dict:
    """One row of the techniques report: the metric before and after, and what was done or why not."""
    return {"technique": name, "applied": applied, "metric": before.metric,
            "before": _metric_value(before), "after": _metric_value(after) if after is not None else None,
            "gain": (_metric_value(after) - _metric_value(before)) if after is not None else None,
            "detail": detail}


def run_techniques(plan, score, variants, max_drop, auto, equalize, smoothquant, bias_correction, rows, progress):
    """Equalization, SmoothQuant, bias correction in that order, each run when asked for (True) or when `auto`
    and the budget is still not met; a technique that was not asked for is kept only if it improves the metric.
    → the plan with what was kept; one report row per technique run is appended to `rows`."""
    for flag, technique in ((equalize, _equalization), (smoothquant, _smoothquant),
                            (bias_correction, _bias_correction)):
        if flag is True or (flag is None and auto and not _met(plan, score, max_drop)):
            plan = technique(plan, flag, score, variants, rows, progress)
    return plan


def _met(plan, score, max_drop) -> bool:
    return max_drop is not None and score(plan).drop <= max_drop


def _equalization(plan, flag, score, variants, rows, progress):
    """Rescale Conv/Gemm/MatMul pairs so each channel's range is shared between the two layers; asked for
    (`flag` True), it is kept even without a gain."""
    progress.start("Cross-layer equalization", None)
    before = score(plan)
    result, reason = variants.rescaled(True, None)
    if reason or not result.pairs:
        why = reason or ("no exact Conv/Gemm/MatMul pair"
                         + (f" ({'; '.join(result.declined[:3])})" if result.declined else ""))
        rows.append(step("equalization", False, before, None, f"skipped: {why}"))
    else:
        candidate = replace(plan, equalize=True)
        after = score(candidate)
        keep = flag is True or after.drop < before.drop
        detail = f"{len(result.pairs)} pair(s): {', '.join(result.pairs[:6])}" + (
            f"; declined: {'; '.join(result.declined[:3])}" if result.declined else "")
        rows.append(step("equalization", keep, before, after, detail))
        plan = candidate if keep else plan
    progress.done()
    return plan


def _smoothquant(plan, flag, score, variants, rows, progress):
    """Move MatMul/Gemm input outliers into the weights at each strength of SMOOTH_ALPHAS; the best by the metric
    is kept if it gains."""
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
        rows.append(step("smoothquant", False, before, None, f"skipped: {tried[0][2]}"))
    else:
        alpha, after, result = min(scored, key=lambda t: t[1].drop)
        keep = after.drop < before.drop
        rows.append(step("smoothquant", keep, before, after,
                         f"alpha {alpha:g} (of {', '.join(f'{t[0]:g}' for t in scored)}, by the metric) "
                         f"on {', '.join(result.pairs[:6])}" + ("" if keep else "; not kept: no gain")))
        plan = replace(plan, smooth_alpha=alpha) if keep else plan
    progress.done()
    return plan


def _bias_correction(plan, flag, score, variants, rows, progress):
    """Subtract each output channel's mean quantization error, measured on the calibration data; kept if it
    gains."""
    progress.start("Bias correction", None)
    before = score(plan)
    candidate = replace(plan, bias_correct=True)
    after = score(candidate)
    keep = after.drop < before.drop
    rows.append(step("bias correction", keep, before, after,
                     "empirical, per output channel, on the calibration data"
                     + ("" if keep else "; not kept: no gain")))
    plan = candidate if keep else plan
    progress.done()
    return plan

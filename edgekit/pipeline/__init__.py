"""`edgekit pipeline`: export → optimize → every variant → validate → bench → one report that says what to ship.

Each step is cached by content hash in the output directory, so a re-run only redoes what changed. A variant
whose step is missing or fails is reported as unavailable with the reason, never hidden.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError, GateError, UsageError
from edgekit.fileio import atomic_write, clean_stale_temps, to_json
from edgekit.pipeline.cache import StepCache
from edgekit.pipeline.config import RUNTIME_OF, VARIANTS, PipelineConfig, load_config

#: the variant each variant is made from (None: made from the exported model)
PARENT = {"onnx-fp32": None, "onnx-int8": "onnx-fp32", "onnx-int8-dynamic": "onnx-fp32", "onnx-fp16": "onnx-fp32",
          "tflite-fp32": "onnx-fp32", "tflite-fp16": "onnx-fp16", "tflite-dynamic": "onnx-int8-dynamic",
          "tflite-int8": "onnx-int8"}


@dataclass
class Variant:
    name: str
    path: Path | None = None
    status: str = "pending"      # ok | failed gate | unavailable | failed
    reason: str = ""
    cached: bool = False
    build_s: float = 0.0
    details: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    bench: list = field(default_factory=list)   # one entry per thread setting / provider
    device_bench: dict = field(default_factory=dict)  # device name → figures there (or the error)
    built_on: str = ""           # "" here; "ray:NODE:PID" when a Ray worker built it

    @property
    def fmt(self) -> str:
        return VARIANTS[self.name][0]


def pipeline(source: str, output_dir: str | Path = "edgekit-out", *, overrides: dict | None = None,
             notify: Callable[[str, str], None] = lambda step, state: None, check_gates: bool = True) -> dict:
    """Run the whole pipeline for CONFIG.toml or SPEC; returns the report dict (also written to output_dir).

    check_gates: when no variant passes the accuracy gate and latency budget, or the recommended one scores below
    [gate] fail_below, raise GateError (exit 6) once the reports are written; the error's `report` is the report.
    """
    config = load_config(source, overrides)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"The output directory '{out}' is a file.", hint="Choose another --output-dir.")
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    run = _Run(config, out, StepCache(out), notify)
    started = time.perf_counter()
    variants = {name: Variant(name) for name in _with_parents(config.variants)}
    run.export()
    if config.ray:
        from edgekit.pipeline.ray_sweep import build_lanes_on_ray, lanes
        run.build(variants["onnx-fp32"], variants)   # every lane starts from it
        build_lanes_on_ray(run, variants, lanes(list(variants), PARENT), config.ray)
    else:
        for name in variants:
            run.build(variants[name], variants)
    chosen = [variants[n] for n in config.variants]
    run.evaluate(chosen)
    run.benchmark(chosen)
    run.benchmark_devices(chosen)
    from edgekit.pipeline.report import recommend, recommend_on_devices, write_reports
    best = recommend(chosen, config)
    report = run.report(chosen, best, time.perf_counter() - started)
    report["devices"] = recommend_on_devices(chosen, config, run.device_info)
    report["device_rows"] = run.device_rows(chosen)
    report["dims"] = run.dims  # the sizes evaluation, random calibration and bench gave the dynamic dims
    report["output_dir"] = str(out)
    if best is not None:
        dest = out / f"best{best.path.suffix}"
        atomic_write(dest, best.path.read_bytes())
        report["best_path"] = str(dest)
    write_reports(report, out)
    if check_gates:
        failure = gate_failure(report)
        if failure is not None:
            failure.report = report
            raise failure
    return report


def gate_failure(report: dict) -> GateError | None:
    """The pipeline's own gates on a finished report: a recommended variant exists, and scores at least fail_below."""
    best = next((r for r in report["rows"] if r["variant"] == report["best"]), None)
    fail_below = report["config"]["fail_below"]
    if best is None:
        return GateError("No variant passed the accuracy gate and latency budget.",
                         hint=f"See {report['output_dir']}/report.md for each variant's figures and reasons.")
    value = (best.get("accuracy") or {}).get("value")
    if fail_below is not None and value is not None and value < fail_below:
        return GateError(f"The recommended variant {best['variant']} scores {value:.4f}, below --fail-below / [gate] fail_below {fail_below}.")
    return None


def _with_parents(names: list[str]) -> list[str]:
    ordered: list[str] = []

    def add(name):
        parent = PARENT[name]
        if parent:
            add(parent)
        if name not in ordered:
            ordered.append(name)
    for name in names:
        add(name)
    return ordered


class _Run:
    def __init__(self, config: PipelineConfig, out: Path, cache: StepCache, notify):
        self.config, self.out, self.cache, self.notify = config, out, cache, notify
        self.exported: Path | None = None
        self.export_info: dict = {}
        self.device_info: list[dict] = []
        self.dims: dict[str, int] = {}   # LABEL → size fed to the exported model's dynamic dims

    # ---------------------------------------------------------------- steps
    def _step(self, step: str, settings: dict, inputs: list, artifact: Path, make: Callable[[], dict]):
        key = self.cache.key(step, settings, inputs)
        record = self.cache.lookup(step, key, artifact)
        if record is not None:
            self.notify(step, "cached")
            return record["result"], True
        self.notify(step, "running")
        result = make()
        self.cache.store(step, key, artifact, result)
        self.notify(step, "done")
        return result, False

    def export(self) -> None:
        from edgekit.converters.torch_export import export
        c = self.config
        artifact = self.out / "model.onnx"
        spec = c.spec if c.spec.startswith("zoo:") or ":" not in c.spec else _spec_path(c)
        spec_file = spec.split(":")[0] if ":" in spec and not spec.startswith("zoo:") else None
        settings = {"spec": c.spec, "input_shapes": c.input_shapes}
        if c.dynamic_axes or c.zoo_dynamic:
            settings.update(dynamic_axes=c.dynamic_axes, zoo_dynamic=c.zoo_dynamic)
        result, _ = self._step("export", settings, [spec_file, c.path(c.weights)], artifact,
                               lambda: export(spec, artifact, weights=c.path(c.weights), input_shapes=c.input_shapes or None,
                                              dynamic_axes=c.dynamic_axes, zoo_dynamic=c.zoo_dynamic,
                                              force=True).as_dict())
        self.exported, self.export_info = artifact, result
        self.dims = dynamic_sizes(result, c.dims)

    def build(self, variant: Variant, variants: dict) -> None:
        parent = variants.get(PARENT[variant.name]) if PARENT[variant.name] else None
        if parent is not None and parent.status in ("unavailable", "failed"):
            variant.status, variant.reason = "unavailable", f"needs {parent.name}, which is {parent.status}: {parent.reason}"
            return
        source = parent.path if parent is not None else self.exported
        suffix = ".onnx" if variant.fmt == "onnx" else ".tflite"
        artifact = self.out / f"{variant.name}{suffix}"
        maker = getattr(self, "_make_" + variant.name.replace("-", "_"))
        settings = _variant_settings(variant.name, self.config)
        inputs = [source, self.config.path(self.config.calibration), self.config.path(self.config.eval)]
        t0 = time.perf_counter()
        try:
            details, cached = self._step(variant.name, settings, inputs, artifact, lambda: maker(source, artifact))
        except ImportError as exc:
            variant.status, variant.reason = "unavailable", f"this edgekit install lacks the step ({exc})"
            self.notify(variant.name, "unavailable")
            return
        except EdgekitError as exc:
            variant.status = "unavailable" if exc.exit_code in (4, 7) else "failed"
            variant.reason = f"{exc.title}: {exc.message}"
            self.notify(variant.name, variant.status)
            return
        variant.path, variant.details, variant.cached, variant.status = artifact, details, cached, "ok"
        variant.build_s = time.perf_counter() - t0

    def _make_onnx_fp32(self, source: Path, artifact: Path) -> dict:
        from edgekit.optimize import optimize
        try:
            return {"optimize": optimize(source, artifact, force=True).as_dict()}
        except EdgekitError as exc:  # an optimization that cannot be verified is skipped, not shipped
            atomic_write(artifact, source.read_bytes())
            return {"optimize": None, "note": f"optimization skipped ({exc.message}); the exported model is used as is"}

    def _quantize(self, mode: str, source: Path, artifact: Path) -> dict:
        from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
        c = self.config
        calib = c.path(c.calibration) or "random"
        if calib == "random" and any(i > 0 for i in self._dynamic_positions()):
            calib = str(self._random_calibration())
        common = dict(mode=mode, calibration=Calibration(calib, preprocess=c.preprocess_spec()),
                      speed=SpeedPolicy(c.speed, allow_slower=True, threads=max(c.threads)), force=True)
        gate = AccuracyGate(eval_data=c.path(c.eval), max_drop=c.max_drop if mode == "static" else None)
        try:
            return quantize(source, artifact, gate=gate, **common).as_dict()
        except GateError as exc:
            # The accuracy search could not reach max_drop: build the plain model anyway, so the report shows its
            # real figures and the pipeline's own gate marks it, instead of hiding the variant.
            result = quantize(source, artifact, gate=replace(gate, max_drop=None), **common).as_dict()
            result.setdefault("notes", []).append(f"accuracy search failed: {exc.message}")
            return result

    def _make_onnx_int8(self, source, artifact):
        return self._quantize("static", source, artifact)

    def _make_onnx_int8_dynamic(self, source, artifact):
        return self._quantize("dynamic", source, artifact)

    def _make_onnx_fp16(self, source, artifact):
        return self._quantize("fp16", source, artifact)

    def _convert(self, source: Path, artifact: Path) -> dict:
        from edgekit.convert import convert
        result = convert(source, artifact, force=True)
        return result.as_dict() if hasattr(result, "as_dict") else dict(result)

    _make_tflite_fp32 = _make_tflite_fp16 = _make_tflite_dynamic = _make_tflite_int8 = _convert

    def _dynamic_positions(self) -> list[int]:
        return [int(d) for axes in self.export_info.get("dynamic_axes", {}).values() for d in axes]

    def _random_calibration(self) -> Path:
        """Random calibration rows at `dims` for a model with a dynamic non-batch dim: the quantizer's own random
        source gives such a dim size 1, and a sequence model calibrated on one-token inputs is calibrated on nothing
        like its use. Seeded (32 rows, as the quantizer's), so the quantize step's cache key stays stable."""
        import io
        from edgekit import runtimes
        from edgekit.inputs import random_inputs
        with runtimes.load(self.exported, runtime="onnxruntime", provider="cpu") as sess:
            rows = [random_inputs(sess.inputs, seed=i, dims=self.dims, batch=1) for i in range(32)]
        buf = io.BytesIO()
        np.savez(buf, **{k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
        dest = self.out / ("calibration-random-" + "-".join(f"{k}{v}" for k, v in sorted(self.dims.items())) + ".npz")
        atomic_write(dest, buf.getvalue())
        return dest

    # ---------------------------------------------------------------- accuracy
    def evaluate(self, variants: list[Variant]) -> None:
        """Run every built variant on the same evaluation inputs; score against labels or the float model."""
        from edgekit import runtimes
        from edgekit.compare import adapt_input, adapt_output
        from edgekit.metrics import diff
        self.notify("evaluate", "running")
        reference_path = next((v.path for v in variants if v.name == "onnx-fp32" and v.path), self.exported)
        with runtimes.load(reference_path, runtime="onnxruntime", provider="cpu") as ref_sess:
            feeds, labels, described = _evaluation_set(self.config, ref_sess, self.dims)
            reference = _run_rows(ref_sess, feeds, lambda a, i: a, lambda a, i: a)
            from edgekit.detection_metrics import detection_spec, renamed
            boxes = detection_spec(ref_sess.metadata, [o.name for o in ref_sess.outputs])  # a detector: rank by boxes
            boxes = boxes and renamed(boxes, {o.name: f"out{k}" for k, o in enumerate(ref_sess.outputs)})
        self.eval_description = described
        for v in variants:
            if v.status != "ok":
                continue
            try:
                with runtimes.load(v.path, runtime=RUNTIME_OF[v.fmt], provider="cpu") as sess:
                    got = _run_rows(sess, feeds, adapt_input, adapt_output)
            except EdgekitError as exc:
                v.status, v.reason = "failed", f"could not run on the evaluation set: {exc.message}"
                continue
            if boxes:
                from edgekit.detection_metrics import variant_accuracy
                v.accuracy = variant_accuracy(boxes, reference, got, labels)
                continue
            name = next(iter(reference))
            d = diff(name, reference[name], got[name])
            acc = {"cosine": d.cosine, "sqnr_db": d.sqnr_db, "max_abs": d.max_abs, "top1_agreement": d.top1_agreement}
            if labels is not None and reference[name].ndim == 2:
                acc["accuracy"] = float(np.mean(got[name].argmax(1) == labels))
                acc["float_accuracy"] = float(np.mean(reference[name].argmax(1) == labels))
                acc["metric"], acc["value"], acc["float_value"] = "accuracy", acc["accuracy"], acc["float_accuracy"]
            elif d.top1_agreement is not None and self.config.eval:
                acc["metric"], acc["value"], acc["float_value"] = "top-1 agreement", d.top1_agreement, 1.0
            else:
                acc["metric"], acc["value"], acc["float_value"] = "cosine", d.cosine, 1.0
            acc["delta"] = acc["value"] - acc["float_value"]
            v.accuracy = acc
        self.notify("evaluate", "done")

    # ---------------------------------------------------------------- speed
    def benchmark(self, variants: list[Variant]) -> None:
        from edgekit.bench import bench
        ready = [v for v in variants if v.status == "ok"]
        if not ready:
            return
        c = self.config
        for provider in c.providers:
            for threads in c.threads:
                step = f"bench ({provider}, {threads} threads)"
                self.notify(step, "running")
                for v in ready:
                    if v.fmt == "tflite" and provider != "cpu":
                        continue
                    report = bench([v.path], runtime=RUNTIME_OF[v.fmt], provider=provider, threads=threads,
                                   dims=self.dims, runs=c.runs, min_time=None if c.runs else c.min_time, keep_going=True,
                                   samples=False, time_limit=60)
                    result = report["models"][0]
                    if result["status"] != "ok":
                        v.bench.append({"provider": provider, "threads": threads, "error": result.get("error")})
                        continue
                    lat = result["latency"]
                    v.bench.append({"provider": result["provider"], "runtime": result["runtime"], "threads": threads,
                                    "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "mean_ms": lat["mean_ms"],
                                    "throughput": result["throughput"]["inferences_per_s"],
                                    "peak_memory": result.get("memory"), "environment": report["environment"]})
                self.notify(step, "done")

    def benchmark_devices(self, variants: list[Variant]) -> None:
        """Every built variant on every `[[devices]]` entry through edgekit.remote: devices in parallel, variants
        one after another on each, with the device's own threads. A device that fails is reported; the others go on."""
        c = self.config
        ready = [v for v in variants if v.status == "ok"]
        if not c.devices or not ready:
            return
        from edgekit.remote import bench_devices
        step = f"bench on {len(c.devices)} device(s)"
        self.notify(step, "running")
        report = bench_devices([v.path for v in ready], c.devices, dims=self.dims, runs=c.runs,
                               min_time=None if c.runs else c.min_time, samples=False, time_limit=60)
        self.device_info = [{k: info.get(k) for k in ("name", "url", "status", "error", "python", "edgekit")}
                            | {"environment": _environment_summary(info.get("environment"))}
                            for info in report["devices"]]
        by_path = {str(v.path): v for v in ready}
        for row in report["models"]:
            v = by_path[row["model"]]
            if row["status"] != "ok":
                v.device_bench[row["device"]] = {"error": row.get("error")}
                continue
            lat = row["latency"]
            v.device_bench[row["device"]] = {
                "runtime": row.get("runtime"), "threads": row.get("threads"), "p50_ms": lat["p50_ms"],
                "p90_ms": lat["p90_ms"], "mean_ms": lat["mean_ms"],
                "throughput": row["throughput"]["inferences_per_s"], "peak_memory": row.get("memory")}
        self.notify(step, "done")

    def device_rows(self, variants: list[Variant]) -> list[dict]:
        """One row per variant × device, with the speed-up over onnx-fp32 on the same device."""
        float_p50 = {}
        for v in variants:
            if v.name == "onnx-fp32":
                float_p50 = {d: b.get("p50_ms") for d, b in v.device_bench.items()}
        rows = []
        for device in self.device_info:
            for v in variants:
                b = v.device_bench.get(device["name"])
                row = {"variant": v.name, "device": device["name"], "status": v.status}
                if b is None:
                    row["error"] = {"message": f"not benchmarked: the variant is {v.status}"} if v.status != "ok" \
                        else device.get("error")
                elif "error" in b:
                    row["error"] = b["error"]
                else:
                    ref = float_p50.get(device["name"])
                    row |= b | {"speedup": ref / b["p50_ms"] if ref and b["p50_ms"] else None}
                rows.append(row)
        return rows

    # ---------------------------------------------------------------- report
    def report(self, variants: list[Variant], best: Variant | None, elapsed: float) -> dict:
        from edgekit.envinfo import fingerprint
        float_p50 = {}
        for v in variants:
            if v.name == "onnx-fp32":
                float_p50 = {(b["provider"], b["threads"]): b["p50_ms"] for b in v.bench if "p50_ms" in b}
        rows = []
        for v in variants:
            fmt, precision, how = VARIANTS[v.name]
            base = {"variant": v.name, "format": fmt, "precision": precision, "made_by": how,
                    "size_mb": v.path.stat().st_size / 1e6 if v.path else None, "status": v.status,
                    "reason": v.reason, "cached": v.cached, "path": str(v.path) if v.path else None,
                    "accuracy": v.accuracy, "details": v.details, "built_on": v.built_on or "here"}
            if not v.bench:
                rows.append(base | {"runtime": RUNTIME_OF[fmt], "provider": None, "threads": None,
                                    "p50_ms": None, "p90_ms": None, "mean_ms": None, "throughput": None,
                                    "speedup": None})
            for b in v.bench:
                ref = float_p50.get((b.get("provider"), b["threads"]))
                rows.append(base | {"runtime": b.get("runtime", RUNTIME_OF[fmt]), "provider": b.get("provider"),
                                    "threads": b["threads"], "p50_ms": b.get("p50_ms"), "p90_ms": b.get("p90_ms"),
                                    "mean_ms": b.get("mean_ms"), "throughput": b.get("throughput"),
                                    "speedup": ref / b["p50_ms"] if ref and b.get("p50_ms") else None,
                                    "bench_error": b.get("error")})
        return {"edgekit_pipeline": 1, "config": self.config.as_dict(), "export": self.export_info,
                "evaluation": getattr(self, "eval_description", ""), "rows": rows,
                "best": best.name if best else None,
                "best_reason": _best_reason(best, self.config) if best else
                "no variant met the accuracy gate and latency budget",
                "environment": fingerprint(threads=max(self.config.threads)), "elapsed_s": elapsed}


def _environment_summary(env: dict | None) -> dict | None:
    """The parts of a device's fingerprint (edgekit.envinfo) a reader compares devices by."""
    if not env:
        return None
    return {k: env.get(k) for k in ("cpu", "arch", "usable_cores", "memory_gb", "python", "edgekit", "packages")}


def dynamic_sizes(export_info: dict, given: dict) -> dict[str, int]:
    """LABEL → size for the exported model's dynamic dims: `given` ([model] dims), else the export example size."""
    sizes, shapes = {}, {i["name"]: i["shape"] for i in export_info.get("inputs", [])}
    for name, axes in export_info.get("dynamic_axes", {}).items():
        for dim, label in axes.items():
            sizes.setdefault(label, shapes[name][int(dim)])
    unknown = sorted(set(given) - set(sizes))
    if unknown:
        raise UsageError(f"[model] dims gives sizes for {unknown}, which are not dynamic dimensions of the exported "
                         f"model (its dynamic dimensions: {sorted(sizes) or 'none'}).",
                         hint='Name the labels of [model] dynamic_axes (e.g. dynamic_axes = ["tokens:1=seq"], '
                              "dims = {seq = 32}).")
    return sizes | dict(given)


def _spec_path(c: PipelineConfig) -> str:
    target, factory = c.spec.rsplit(":", 1)
    if target.endswith(".py"):
        return f"{c.path(target)}:{factory}"
    return c.spec


def _variant_settings(name: str, c: PipelineConfig) -> dict:
    settings = {"variant": name}
    if name.startswith("onnx-int8") or name == "onnx-fp16":
        settings.update(max_drop=c.max_drop, threads=max(c.threads), preprocess=c.preprocess, speed=c.speed)
        if c.dims:  # the random calibration's sizes (other sizes follow from the exported model, hashed as input)
            settings["dims"] = c.dims
    return settings


def _best_reason(best: Variant, c: PipelineConfig) -> str:
    b = min((x for x in best.bench if "p50_ms" in x), key=lambda x: x["p50_ms"])
    words = f"fastest variant within the accuracy gate (max drop {c.max_drop:.3g})"
    if c.latency_budget_ms:
        words += f" and the {c.latency_budget_ms} ms latency budget"
    return f"{words}: p50 {b['p50_ms']:.3f} ms on {b['runtime']} ({b['threads']} threads)"


def _evaluation_set(config: PipelineConfig, sess, dims: dict | None = None) -> tuple[list[dict], np.ndarray | None, str]:
    """Rows of feeds (batch 1 or the model's batch) and labels if the eval data has them."""
    from edgekit.inputs import load_npz, random_inputs
    if config.eval:
        path = config.path(config.eval)
        with np.load(path, allow_pickle=False) as data:
            labels = data["labels"][: config.eval_samples] if "labels" in data.files else None
        arrays = load_npz(path, sess.inputs)
        n = min(len(next(iter(arrays.values()))), config.eval_samples)
        rows = [{k: v[i:i + 1] for k, v in arrays.items()} for i in range(n)]
        return rows, labels, f"{n} samples from {config.eval}" + (" with labels" if labels is not None else "")
    rows = [random_inputs(sess.inputs, seed=1000 + i, dims=dims, batch=1) for i in range(min(config.eval_samples, 64))]
    return rows, None, (f"{len(rows)} seeded random inputs (no eval data given: each variant is scored by the "
                        f"cosine similarity of its outputs to the float model's — argmax agreement on random inputs "
                        f"says little — not by ground truth)")


def _run_rows(sess, rows: list[dict], adapt_in, adapt_out) -> dict[str, np.ndarray]:
    outputs: dict[str, list] = {}
    for feeds in rows:
        ordered = [adapt_in(feeds[i.name] if i.name in feeds else list(feeds.values())[k], i)
                   for k, i in enumerate(sess.inputs)]
        result = sess.run(ordered)
        for k, info in enumerate(sess.outputs):
            outputs.setdefault(f"out{k}", []).append(adapt_out(result[info.name], info))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def dumps(report: dict) -> str:
    return to_json(report)


__all__ = ["pipeline", "VARIANTS"]

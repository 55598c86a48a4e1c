"""Quantize an ONNX model (static INT8, dynamic INT8, FP16) with an accuracy report, per-layer blame, a search
for the fewest layers to keep in float under an accuracy budget, and a speed check against the float model.

`quantize(...)` is what `edgekit quantize` calls; onnxruntime.quantization does the quantizing itself. Its options
come in groups (edgekit.quantize.options); the run goes through one function per phase (edgekit.quantize.phases):
data → calibrate → rescaled variants → score and techniques → search/gate → speed → write.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.quantize import phases
from edgekit.quantize.build import Plan
from edgekit.quantize.evaluate import Accuracy, NullProgress, Speed
from edgekit.quantize.options import (MODES, AccuracyGate, Calibration, Scheme, SpeedPolicy, Techniques,
                                      check_mode, from_flat)

__all__ = ["quantize", "QuantizeResult", "MODES", "Scheme", "Calibration", "AccuracyGate", "Techniques",
           "SpeedPolicy"]


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


def quantize(model: str | os.PathLike, output: str | os.PathLike, *, mode: str = "static",
             calibration: Calibration | None = None, gate: AccuracyGate | None = None,
             techniques: Techniques | None = None, speed: SpeedPolicy | None = None, scheme: Scheme | None = None,
             exclude=(), seed: int = 0, force: bool = False, progress=None, **flat) -> QuantizeResult:
    """Quantize the ONNX file `model` into `output`. Nothing is written when a check or gate fails.

    `mode` is static, dynamic or fp16; `exclude` keeps node names, op types or PyTorch module paths in float; the
    groups default to their defaults (`Calibration()` has no data: static mode needs `Calibration("calib.npz")`).
    Each accuracy technique that ran is recorded in `QuantizeResult.techniques` and the model's
    `edgekit.quantization` metadata with the metric before and after.

    The flat keywords of earlier releases (`calib=`, `max_drop=`, `speed="off"`, ...) still work for one release,
    with a DeprecationWarning: `**flat` takes them (edgekit.quantize.options.from_flat).
    """
    groups = from_flat({Scheme: scheme, Calibration: calibration, AccuracyGate: gate, Techniques: techniques,
                        SpeedPolicy: speed}, flat)
    check_mode(mode)
    run = phases.open_run(model, output, mode, groups, exclude, seed, force, progress or NullProgress())
    try:
        phases.read_data(run)
        with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as tmp:
            phases.prepare(run, Path(tmp))
            phases.calibrate_ranges(run)
            phases.rescaled_variants(run)
            phases.score_and_techniques(run)
            phases.search_or_warn(run)
            phases.check_speed(run)
            summary = phases.write(run)
    finally:
        for s in {id(s): s for s in (run.source, run.esource) if s is not None}.values():
            s.close()
    cal, gate = run.calibration, run.gate
    data = {"calibration": str(cal.data) if cal.data else None,
            "calibration_samples": run.cal_stop if run.source else 0,
            "evaluation": str(gate.eval_data) if gate.eval_data else (
                "held-out part of --calib" if run.source is not None and run.esource is run.source else "random"),
            "evaluation_samples": run.evaluator.samples, "batch": run.batch,
            "float_modules": summary["float_modules"], "float_tensor_modules": summary.get("float_tensor_modules", {})}
    return QuantizeResult(run.out, run.plan, run.hw.as_dict(), run.accuracy, run.speed_result, run.blame_rows,
                          run.trials, run.speed_trials, data, run.notes, run.warnings, run.techniques)

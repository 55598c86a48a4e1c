"""Graph cleanup that keeps ONNX portable: shape inference, constant folding, dead/no-op node removal,
BatchNorm folding and optional shape fixing — each result checked against the input model on seeded inputs.

Portable mode uses onnxscript's optimizer (its default rewrite rules fold BatchNorm into Conv, remove
Identity/Dropout, fuse Pad into Conv). `ort_fusions=True` instead saves ONNX Runtime's extended-level graph,
which may contain com.microsoft ops and then runs only on ONNX Runtime.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.deps import require
from edgekit.errors import InternalError, UsageError, ValidationError
from edgekit.fileio import check_output
from edgekit.onnx_io import save_onnx

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
VALIDATION_SEEDS = (0, 1)
#: node metadata keys worth carrying from the input nodes to the optimized nodes that replace them
NODE_METADATA_KEYS = ("edgekit.module", "namespace", "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy",
                      "pkg.torch.onnx.stack_trace")


@dataclass
class OptimizeResult:
    path: Path | None
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    validation: list[dict]
    ort_only: bool
    fixed_shapes: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def nodes_before(self) -> int:
        return sum(self.ops_before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.ops_after.values())

    def as_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "ops_before": self.ops_before, "ops_after": self.ops_after,
                "validation": self.validation, "ort_only": self.ort_only, "fixed_shapes": self.fixed_shapes,
                "notes": self.notes}


def op_counts(model) -> dict[str, int]:
    """Node count by op type ('domain::Op' for non-standard domains), main graph only."""
    counts = Counter(op_label(n) for n in model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def op_label(node) -> str:
    return node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}::{node.op_type}"


def optimize(model: str | os.PathLike, output: str | os.PathLike, *, fix_shapes: list[str] | tuple = (),
             ort_fusions: bool = False, dims: dict[str, int] | None = None, atol: float = 1e-5, rtol: float = 1e-4,
             force: bool = False) -> OptimizeResult:
    """Optimize the ONNX file `model` into `output`; nothing is written unless the outputs still match."""
    from edgekit.onnx_io import load_onnx
    out_path = check_output(output, (model,), force=force)
    original = load_onnx(model)
    optimized, fixed, notes = optimize_model(original, fix_shapes=fix_shapes, ort_fusions=ort_fusions)
    validation = check_equivalent(original, optimized, dims=dims, fixed=fixed, atol=atol, rtol=rtol)
    failed = [v for v in validation if not v["ok"]]
    if failed:
        worst = max(failed, key=lambda v: v["max_abs"])
        raise ValidationError(
            f"The optimized model's output '{worst['output']}' differs from the input model's by up to "
            f"{worst['max_abs']:.3g} (tolerance {atol:g} + {rtol:g} x output scale {worst['scale']:.3g}); "
            f"nothing was written.",
            hint="Report this with the model; meanwhile use the model unoptimized, or try --ort-fusions.")
    save_onnx(optimized, out_path)
    return OptimizeResult(out_path, op_counts(original), op_counts(optimized), validation, ort_fusions,
                          {k: list(v) for k, v in fixed.items()}, notes)


def optimize_model(original, *, fix_shapes=(), ort_fusions: bool = False):
    """In memory: → (optimized ModelProto, {input: fixed shape}, notes). The input proto is not modified."""
    onnx = require("onnx", "Optimizing ONNX models")
    model = onnx.ModelProto()
    model.CopyFrom(original)
    notes: list[str] = []
    fixed = fix_input_shapes(model, fix_shapes)
    if fixed:
        notes.append("fixed input shapes: " + ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in fixed.items()))
    model = _infer_shapes(model)
    if ort_fusions:
        optimized = _ort_optimize(model)
        notes.append("ONNX Runtime extended-level fusions applied: the result runs on ONNX Runtime only")
    else:
        optimized = _portable_optimize(model)
        foreign = sorted({op_label(n) for n in optimized.graph.node if n.domain not in STANDARD_DOMAINS}
                         - {op_label(n) for n in original.graph.node if n.domain not in STANDARD_DOMAINS})
        if foreign:
            raise InternalError(f"Portable optimization introduced non-standard ops {foreign}.",
                                hint="Report this; meanwhile use the model unoptimized.")
    _carry_metadata(original, optimized, ort_only=ort_fusions)
    return optimized, fixed, notes


def fix_input_shapes(model, fix_shapes) -> dict[str, tuple[int, ...]]:
    """Set graph input dims in place from 'name=1x3x224x224' strings; checks rank and static dims."""
    from edgekit.inputs import parse_shape
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    fixed: dict[str, tuple[int, ...]] = {}
    problems = []
    for text in fix_shapes:
        name, dims, _dtype = parse_shape(text)
        if name is None:
            if len(inputs) != 1:
                raise UsageError(f"--fix-shape '{text}' names no input, and the model has {len(inputs)} inputs.",
                                 hint=f"Write NAME=DIMS with NAME one of {[i.name for i in inputs]}.")
            name = inputs[0].name
        target = next((i for i in inputs if i.name == name), None)
        if target is None:
            problems.append(f"no input named '{name}' (inputs: {[i.name for i in inputs]})")
            continue
        shape = target.type.tensor_type.shape
        if len(shape.dim) != len(dims):
            problems.append(f"'{name}' has rank {len(shape.dim)}, the shape given has {len(dims)} dims")
            continue
        for d, v in zip(shape.dim, dims):
            if d.HasField("dim_value") and d.dim_value != v:
                problems.append(f"'{name}' has the static size {d.dim_value} where {v} was given")
        fixed[name] = dims
    if problems:
        raise UsageError("Cannot fix input shapes: " + "; ".join(problems) + ".",
                         hint="Only dynamic dimensions can be fixed; static ones must keep their size.")
    for inp in inputs:
        if inp.name in fixed:
            for d, v in zip(inp.type.tensor_type.shape.dim, fixed[inp.name]):
                d.Clear()
                d.dim_value = v
    if fixed:  # stale symbolic shapes would contradict the fixed ones; shape inference re-derives them
        del model.graph.value_info[:]
        for o in model.graph.output:
            for d in o.type.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    d.Clear()
    return fixed


def _infer_shapes(model):
    onnx = require("onnx", "Optimizing ONNX models")
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # models over 2 GB or with unknown domains: continue without the extra shape info
        return model


def _portable_optimize(model):
    optimizer = require("onnxscript.optimizer", "Optimizing ONNX models")
    return optimizer.optimize(model, num_iterations=3)


def _ort_optimize(model):
    import tempfile
    ort = require("onnxruntime", "ONNX Runtime graph fusions")
    onnx = require("onnx", "Optimizing ONNX models")
    with tempfile.TemporaryDirectory(prefix="edgekit-opt-") as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(tmp) / "ort.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def _carry_metadata(original, optimized, *, ort_only: bool) -> None:
    """Keep model metadata_props and node provenance (module path) across the rewrite."""
    from edgekit.onnx_io import set_metadata
    for prop in original.metadata_props:
        set_metadata(optimized, prop.key, prop.value)
    if ort_only:
        set_metadata(optimized, "edgekit.runtime_only", "onnxruntime")
    by_output: dict[str, dict[str, str]] = {}
    by_name: dict[str, dict[str, str]] = {}
    for node in original.graph.node:
        meta = {p.key: p.value for p in node.metadata_props if p.key in NODE_METADATA_KEYS}
        if not meta:
            continue
        by_name[node.name] = meta
        for o in node.output:
            by_output[o] = meta
    for node in optimized.graph.node:
        have = {p.key for p in node.metadata_props}
        meta = by_name.get(node.name) or next((by_output[o] for o in node.output if o in by_output), None)
        if not meta:
            continue
        for k, v in meta.items():
            if k not in have:
                node.metadata_props.add(key=k, value=v)
    optimized.producer_name = original.producer_name or optimized.producer_name


def check_equivalent(reference, candidate, *, dims=None, fixed=None, atol: float, rtol: float,
                     seeds=VALIDATION_SEEDS) -> list[dict]:
    """Run both models on seeded inputs (ONNX Runtime) and compare every output at output scale."""
    from edgekit.inputs import random_inputs
    from edgekit.metrics import diff
    from edgekit.runtimes import load
    # the reference runs unoptimized, so ONNX Runtime's own folding cannot hide a wrong rewrite
    ref = load(reference.SerializeToString(), runtime="onnxruntime", provider="cpu", optimization="disable")
    cand = load(candidate.SerializeToString(), runtime="onnxruntime", provider="cpu")
    infos = ref.inputs
    if fixed:
        from edgekit.runtimes import TensorInfo
        infos = [TensorInfo(i.name, i.dtype, tuple(fixed[i.name]), i.layout) if i.name in fixed else i for i in infos]
    rows = []
    for seed in seeds:
        feeds = random_inputs(infos, seed=seed, dims=dims, batch=None)
        want, got = ref.run(feeds), cand.run(feeds)
        for name, value in want.items():
            if name not in got:
                raise InternalError(f"The optimized model lost the output '{name}'.")
            d = diff(name, value, got[name])
            rows.append({"seed": seed, "output": name, "max_abs": d.max_abs, "scale": d.scale, "cosine": d.cosine,
                         "ok": bool(d.within(atol, rtol))})
    return rows


__all__ = ["optimize", "optimize_model", "OptimizeResult", "op_counts", "check_equivalent", "fix_input_shapes"]

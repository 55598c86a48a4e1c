"""PyTorch → ONNX export with validation: the exported graph must compute what the module computes.

What SPEC and --weights name is resolved by torch_spec (load_spec, load_weights, re-exported here); this module runs
the exporters, records provenance and validation in the ONNX metadata, and diffs the export against PyTorch."""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import __version__
from edgekit.converters.torch_spec import InputSpec, SourceModel, load_spec, load_weights  # noqa: F401 (re-exported)
from edgekit.deps import require
from edgekit.errors import UsageError, ValidationError
from edgekit.fileio import check_output
from edgekit.inputs import random_array
from edgekit.onnx_io import (all_nodes, flatten_outputs as _flatten, module_path_of, opset_of,  # noqa: F401 (re-exported)
                             set_metadata)

DEFAULT_OPSET = 18
VALIDATION_SEEDS = (0, 1, 2)


@dataclass
class ExportResult:
    path: Path | None
    exporter: str
    exporter_note: str
    opset: int
    inputs: list[dict]
    outputs: list[str]
    validation: list[dict]
    valid: bool
    dynamic_axes: dict

    def as_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "exporter": self.exporter,
                "exporter_note": self.exporter_note, "opset": self.opset, "inputs": self.inputs,
                "outputs": self.outputs, "validation": self.validation, "valid": self.valid,
                "dynamic_axes": self.dynamic_axes}


# ------------------------------------------------------------------ export

def export(spec: str, output: str | Path, *, weights: str | None = None, input_shapes: list[str] | None = None,
           dynamic_batch: bool = False, dynamic_axes: list[str] | tuple = (), opset: int | None = None,
           exporter: str = "auto", atol: float = 1e-4, rtol: float = 1e-3, keep_invalid: bool = False,
           force: bool = False, trust_torchscript: bool = False, nms: dict | None = None, zoo_dynamic: bool = False,
           log: Callable[[str], None] = lambda msg: None) -> ExportResult:
    """Export SPEC to ONNX at `output`, validated against PyTorch on seeded inputs; written atomically.

    zoo_dynamic: also make the dimensions a zoo entry declares dynamic (ZooEntry.dynamic_axes, e.g. zoo:transformer's
    tokens:1=seq). Opt-in: a recurrent zoo model with a run-time length does not compile to TFLite (its loops need a
    fixed step count), so `export zoo:gru | convert` keeps working by default.

    nms: append box decoding and NMS to the validated detection head (keyword arguments of
    edgekit.detection.nms_options: conf, iou, max_det, agnostic, box_format, head)."""
    if nms is not None:
        from edgekit.detection import nms_options
        nms = nms_options(**nms)
        if dynamic_batch or dynamic_axes or zoo_dynamic:
            raise UsageError("NMS appended by export needs static shapes (batch 1, a fixed number of anchors); "
                             "dynamic axes were requested.", hint="Drop --dynamic-batch/--dynamic-axis with --nms.")
    output = check_output(output, (spec.split(":")[0] if ":" in spec and not spec.startswith("zoo:") else spec, weights),
                          force=force)
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise UsageError(f"Unknown exporter '{exporter}'.", hint="Choose auto, dynamo or torchscript.")
    source = load_spec(spec, weights, input_shapes, trust_torchscript)
    axes = _dynamic_axes(source, dynamic_batch, dynamic_axes, zoo_dynamic)
    torch = require("torch", "Exporting from PyTorch")
    examples = _example_tensors(source.inputs, seed=0)
    try:
        with torch.no_grad():
            reference = source.module(*examples)
    except Exception as exc:
        shapes = ", ".join(f"{i.name}: {'x'.join(map(str, i.shape))} {i.dtype}" for i in source.inputs)
        raise UsageError(f"The model '{spec}' failed on example inputs ({shapes}): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300]}",
                         hint="Check the number, rank and sizes of --input-shape values.") from exc
    output_names = source.output_names or [f"output_{i}" for i in range(len(_flatten(reference)))]
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    attempts = []  # (exporter, proto or None, validation, reason)
    for name in order:
        try:
            proto = _run_exporter(name, source, examples, output_names, axes, opset or DEFAULT_OPSET)
        except Exception as exc:  # the exporters raise anything from TypeError to torch-internal errors
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            attempts.append((name, None, [], f"failed: {reason}"))
            if name != order[-1]:
                log(f"The {name} exporter failed ({reason}); trying the TorchScript exporter.")
            continue
        _annotate(proto, source, name, axes)
        validation = validate(source, proto, axes, atol, rtol)
        ok = all(v["ok"] for v in validation)
        attempts.append((name, proto, validation, "validated" if ok else "exported, but its outputs diverge"))
        if ok:
            break
        if name != order[-1]:
            log(f"The {name} export does not match PyTorch; trying the TorchScript exporter.")
    exported = [a for a in attempts if a[1] is not None]
    if not exported:
        from edgekit.errors import UnsupportedModelError
        raise UnsupportedModelError(
            "PyTorch could not export the model to ONNX: " + "; ".join(f"{n} {r}" for n, _, _, r in attempts),
            hint="Try --exporter torchscript or dynamo explicitly, another --opset, or rewrite the unsupported operation.")
    used, proto, validation, _ = next((a for a in exported if all(v["ok"] for v in a[2])), exported[0])
    valid = all(v["ok"] for v in validation)
    note = _exporter_note(used, exporter, attempts)
    _record_validation(proto, validation, atol, rtol)
    if nms is not None and (valid or keep_invalid):
        from edgekit.detection import append_nms
        proto = append_nms(proto, **nms)
    elif spec.startswith("zoo:") and len(proto.graph.output) == 1:
        from edgekit.zoo import get
        if get(spec[4:]).task == "detection":  # compare, quantize and the pipeline then judge it by its boxes
            from edgekit.detection import mark_head
            mark_head(proto, proto.graph.output[0].name)
    if spec.startswith("zoo:"):  # the zoo model's processing and labels, for apps: edgekit.load(model).detect()
        from edgekit.processing import processing_metadata
        from edgekit.zoo import get
        for key, value in processing_metadata(get(spec[4:]).processing).items() if get(spec[4:]).processing else ():
            set_metadata(proto, key, value)
    result = ExportResult(None, used, note, opset_of(proto), [i.__dict__ | {"shape": list(i.shape)} for i in source.inputs],
                          [o.name for o in proto.graph.output], validation, valid, axes)
    if valid or keep_invalid:
        from edgekit.onnx_io import save_onnx
        result.path = save_onnx(proto, output)[-1]
    if not valid:
        worst = max((v for v in validation if not v["ok"]), key=lambda v: v["max_abs"])
        tried = "; ".join(f"{n}: {r}" for n, _, _, r in attempts)
        raise ValidationError(
            f"The exported ONNX diverges from PyTorch: output '{worst['output']}' ({worst['case']}) differs by "
            f"max abs {worst['max_abs']:.3g} (max rel {worst['max_rel']:.3g}, output scale {worst['scale']:.3g}), "
            f"beyond atol={atol:g} + rtol={rtol:g}×scale (exporters tried — {tried}). "
            + (f"The file was kept at '{output}' because of --keep-invalid." if keep_invalid else "Nothing was written."),
            hint="Data-dependent Python control flow (if/for on tensor values) cannot be exported faithfully; "
                 "rewrite it with torch.where, try another --opset, or use --keep-invalid to inspect the file.")
    return result


def _exporter_note(used: str, requested: str, attempts) -> str:
    if requested != "auto":
        return f"{used} exporter (requested)"
    if used == "dynamo":
        return "dynamo exporter (torch.export), the default"
    first = attempts[0]
    return f"TorchScript exporter, because the dynamo exporter {first[3]}"


def _dynamic_axes(source: SourceModel, dynamic_batch: bool, dynamic_axes, zoo_dynamic: bool = False) -> dict:
    axes: dict[str, dict[int, str]] = {}
    names = [i.name for i in source.inputs]
    if zoo_dynamic:
        if not source.spec.startswith("zoo:") or not source.dynamic_axes:
            from edgekit.zoo import ZOO
            declaring = ", ".join(f"zoo:{e.name}" for e in ZOO.values() if e.dynamic_axes)
            raise UsageError(f"--zoo-dynamic applies the dynamic axes a zoo entry declares; '{source.spec}' declares none.",
                             hint=f"Entries that declare some: {declaring}. For other models give --dynamic-axis "
                                  "INPUT:DIM=LABEL.")
        for name, dims in source.dynamic_axes.items():
            axes.setdefault(name, {}).update({int(d): label for d, label in dims.items()})
    if dynamic_batch:
        for i in source.inputs:
            axes.setdefault(i.name, {})[0] = "batch"
    for text in dynamic_axes:
        try:
            name, rest = text.split(":", 1)
            dim, label = rest.split("=", 1)
            dim = int(dim)
        except ValueError:
            raise UsageError(f"Cannot read --dynamic-axis '{text}'.", hint="Write INPUT:DIM=label, e.g. x:1=seq.") from None
        if name not in names:
            raise UsageError(f"--dynamic-axis names the input '{name}', which the model does not have.",
                             hint=f"Its inputs are {names}.")
        rank = len(next(i for i in source.inputs if i.name == name).shape)
        if not 0 <= dim < rank:
            raise UsageError(f"--dynamic-axis '{text}': input '{name}' has rank {rank}, so DIM must be 0..{rank - 1}.")
        axes.setdefault(name, {})[dim] = label
    return axes


def _example_tensors(inputs: list[InputSpec], seed: int, override: dict | None = None):
    torch = require("torch", "Exporting from PyTorch")
    rng = np.random.default_rng(seed)
    arrays = []
    for i in inputs:
        shape = (override or {}).get(i.name, i.shape)
        arrays.append(torch.from_numpy(np.ascontiguousarray(random_array(shape, i.dtype, rng))))
    return tuple(arrays)


def _run_exporter(name, source, examples, output_names, axes, opset):
    torch = require("torch", "Exporting from PyTorch")
    onnx = require("onnx", "Exporting to ONNX")
    input_names = [i.name for i in source.inputs]
    with _silenced(), torch.no_grad(), _no_mha_fastpath(torch):
        if name == "dynamo":
            require("onnxscript", "The dynamo ONNX exporter")
            program = torch.onnx.export(source.module, examples, input_names=input_names, output_names=output_names,
                                        dynamic_axes=axes or None, opset_version=opset, dynamo=True, verbose=False)
            return program.model_proto
        buf = io.BytesIO()
        torch.onnx.export(source.module, examples, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes or None, opset_version=min(opset, 20), dynamo=False,
                          do_constant_folding=True)
        return onnx.load_from_string(buf.getvalue())


@contextlib.contextmanager
def _no_mha_fastpath(torch):
    """nn.TransformerEncoderLayer's fused inference kernel has no ONNX form; export the composite ops instead."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def _silenced():
    """The exporters print diagnostics and warnings meant for their developers; keep the terminal clean."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ metadata

def _annotate(proto, source: SourceModel, exporter: str, axes: dict) -> None:
    import json
    drop = {"pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node"}
    for node in all_nodes(proto.graph):
        path = module_path_of(node)
        kept = [(p.key, p.value) for p in node.metadata_props if p.key not in drop]
        del node.metadata_props[:]
        for k, v in kept:
            node.metadata_props.add(key=k, value=v)
        if path:
            node.metadata_props.add(key="edgekit.module", value=path)
    proto.producer_name = "edgekit"
    proto.producer_version = __version__
    set_metadata(proto, "edgekit.version", __version__)
    set_metadata(proto, "edgekit.source", source.spec)
    set_metadata(proto, "edgekit.exporter", exporter)
    set_metadata(proto, "edgekit.input_shapes", json.dumps({i.name: list(i.shape) for i in source.inputs}))
    set_metadata(proto, "edgekit.dynamic_axes", json.dumps(axes))


def _record_validation(proto, validation, atol, rtol) -> None:
    import json
    set_metadata(proto, "edgekit.validation", json.dumps({"reference": "pytorch", "atol": atol, "rtol": rtol,
                                                          "cases": validation}))


# ------------------------------------------------------------------ validation

def validate(source: SourceModel, proto, axes: dict, atol: float, rtol: float) -> list[dict]:
    """Run PyTorch and ONNX Runtime on seeded inputs (and a second size per dynamic axis); diff each output."""
    torch = require("torch", "Validating an export")
    from edgekit import runtimes
    from edgekit.metrics import diff, merge
    session = runtimes.load(proto.SerializeToString(), runtime="onnxruntime", provider="cpu")
    cases = [("example shapes", {})]
    if axes:
        bigger = {}
        for i in source.inputs:
            shape = list(i.shape)
            for dim in axes.get(i.name, {}):
                shape[dim] = shape[dim] * 2 + 1
            bigger[i.name] = tuple(shape)
        desc = ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in bigger.items() if n in axes)
        cases.append((f"dynamic sizes {desc}", bigger))
    results = []
    for label, override in cases:
        per_output: dict[str, list] = {}
        for seed in VALIDATION_SEEDS:
            tensors = _example_tensors(source.inputs, seed, override)
            with torch.no_grad():
                ref = [t.detach().cpu().numpy() for t in _flatten(source.module(*tensors))]
            try:
                got = session.run([t.numpy() for t in tensors])
            except Exception as exc:
                raise ValidationError(f"ONNX Runtime failed to run the exported model on {label}: "
                                      f"{str(exc).splitlines()[0][:300]}",
                                      hint="The dynamic axes may not be supported by this model; "
                                           "export with static shapes.") from exc
            for out_info, r in zip(session.outputs, ref):
                per_output.setdefault(out_info.name, []).append(diff(out_info.name, r, got[out_info.name]))
        for name, diffs in per_output.items():
            d = merge(diffs)
            results.append({"case": label, "output": name, "max_abs": d.max_abs, "max_rel": d.max_rel,
                            "scale": d.scale, "cosine": d.cosine, "ok": d.within(atol, rtol)})
    return results

"""PyTorch → ONNX export with validation: the exported graph must compute what the module computes."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect as pyinspect
import io
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import __version__
from edgekit.deps import require
from edgekit.errors import InvalidModelError, UsageError, ValidationError
from edgekit.fileio import check_output, sniff_format
from edgekit.inputs import parse_shape, random_array
from edgekit.onnx_io import flatten_outputs as _flatten, module_path_of, set_metadata  # noqa: F401 (re-exported)

DEFAULT_OPSET = 18
VALIDATION_SEEDS = (0, 1, 2)


@dataclass
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass
class SourceModel:
    """A PyTorch module ready to export, with what we know about its inputs and outputs."""
    module: object
    inputs: list[InputSpec]
    output_names: list[str] | None
    spec: str
    dynamic_axes: dict = field(default_factory=dict)  # {input: {dim: label}} from the zoo


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


# ------------------------------------------------------------------ loading the source

def load_spec(spec: str, weights: str | None = None, input_shapes: list[str] | None = None,
              trust_torchscript: bool = False) -> SourceModel:
    """Resolve SPEC (zoo:NAME, package.module:factory, file.py:factory, model.pt2) to a module and inputs."""
    torch = require("torch", "Exporting from PyTorch")
    _quiet_torch()
    if spec.startswith("zoo:"):
        from edgekit.zoo import get
        entry = get(spec[4:])
        module = entry.build()
        inputs = [InputSpec(n, tuple(s), d) for n, s, d in entry.inputs]
        source = SourceModel(module, inputs, list(entry.outputs), spec, dict(entry.dynamic_axes))
    elif Path(spec).suffix.lower() in (".pt2", ".pt", ".pth", ".onnx", ".tflite") or (
            Path(spec).is_file() and ":" not in spec):
        source = _load_file_spec(spec, torch, trust_torchscript)
    else:
        module = _call_factory(spec, torch)
        source = SourceModel(module, _inputs_from_signature(module), None, spec)
    if weights:
        load_weights(source.module, weights)
    if input_shapes:
        source.inputs = _apply_shapes(source.inputs, input_shapes, spec)
    missing = [i.name for i in source.inputs if not i.shape]
    if missing:
        raise UsageError(f"The model '{spec}' does not declare example input shapes for {missing}.",
                         hint="Give one --input-shape per input, e.g. --input-shape 1x3x224x224.")
    return source


def _load_file_spec(spec: str, torch, trust_torchscript: bool) -> SourceModel:
    path = Path(spec)
    fmt = sniff_format(path)
    if fmt == "pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise InvalidModelError(f"Cannot load the exported program '{path}': {exc}",
                                    hint="Save it with torch.export.save(torch.export.export(model, args), path).") from exc
        module = program.module()
        example = program.example_inputs[0] if program.example_inputs else ()
        names = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        inputs = [InputSpec(n, tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in zip(names, example)]
        return SourceModel(module, inputs, None, spec)
    if fmt == "torchscript":
        if not trust_torchscript:
            raise UsageError(f"'{path}' is a TorchScript archive, which contains code that would run on load.",
                             hint="Load it only if you trust its author: add --trust-torchscript. "
                                  "Better: export from the Python model (SPEC file.py:factory).")
        module = torch.jit.load(str(path), map_location="cpu").eval()
        inputs = [InputSpec(a.name, ()) for a in module.forward.schema.arguments[1:]]
        return SourceModel(module, inputs, None, spec)
    if fmt in ("pickle", "safetensors"):
        raise UsageError(f"'{path}' holds weights or a pickled object, not a model definition.",
                         hint="Give the model's code as SPEC (package.module:factory or file.py:factory) "
                              f"and this file as --weights {path}.")
    raise UsageError(f"'{path}' is already an {fmt} model; there is nothing to export.",
                     hint="Use it directly with edgekit inspect, bench, quantize or convert.")


def _call_factory(spec: str, torch) -> object:
    if ":" not in spec:
        raise UsageError(f"Cannot read the model spec '{spec}'.",
                         hint="Write zoo:NAME, package.module:factory, path/to/file.py:factory, or model.pt2.")
    target, factory_name = spec.rsplit(":", 1)
    module = _import_target(target, spec)
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UsageError(f"'{target}' has no callable named '{factory_name}'.",
                         hint=f"Callables found there: {', '.join(public[:20]) or 'none'}.")
    try:
        model = factory()
    except TypeError as exc:
        raise UsageError(f"Calling the factory '{spec}' with no arguments failed: {exc}",
                         hint="The factory must build the model with no arguments (wrap it in a small function).") from exc
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"The factory '{spec}' returned a {type(model).__name__}, not a torch.nn.Module.",
                         hint="Make it return the model instance (e.g. `return MyNet()`).")
    return model.eval()


def _import_target(target: str, spec: str):
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"The file '{target}' in spec '{spec}' does not exist.", hint="Check the path.")
        name = f"_edgekit_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up there
        sys.path.insert(0, str(path.parent.resolve()))
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise UsageError(f"Importing '{target}' failed: {type(exc).__name__}: {exc}",
                             hint="Fix the error in that file (run it with python to see the traceback).") from exc
        finally:
            sys.path.pop(0)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise UsageError(f"Cannot import the module '{target}' ({exc}).",
                         hint="Check the name and that it is importable (installed, or on PYTHONPATH).") from exc
    except Exception as exc:
        raise UsageError(f"Importing '{target}' failed: {type(exc).__name__}: {exc}",
                         hint="Fix the error in that module.") from exc


def _inputs_from_signature(module) -> list[InputSpec]:
    params = [p for p in pyinspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return [InputSpec(p.name, ()) for p in params]


def _apply_shapes(inputs: list[InputSpec], shapes: list[str], spec: str) -> list[InputSpec]:
    parsed = [parse_shape(s) for s in shapes]
    if len(parsed) != len(inputs):
        raise UsageError(f"'{spec}' takes {len(inputs)} input(s) {[i.name for i in inputs]}, "
                         f"but {len(parsed)} --input-shape value(s) were given.",
                         hint="Give exactly one --input-shape per input, in order.")
    out = []
    for given, (name, dims, dtype) in zip(inputs, parsed):
        if given.shape and len(dims) != len(given.shape):
            raise UsageError(f"Input '{given.name}' of '{spec}' has rank {len(given.shape)} "
                             f"(example shape {'x'.join(map(str, given.shape))}), but --input-shape gave rank {len(dims)}.",
                             hint=f"Give {len(given.shape)} dimensions.")
        out.append(InputSpec(name or given.name, dims, dtype or given.dtype))
    return out


def load_weights(module, weights: str) -> None:
    """Load a state dict safely (safetensors, or torch.load(weights_only=True)); list key mismatches."""
    torch = require("torch", "Loading weights")
    path = Path(weights)
    fmt = sniff_format(path)
    if fmt == "safetensors":
        safetensors_torch = require("safetensors.torch", "Loading .safetensors weights")
        try:
            state = safetensors_torch.load_file(str(path))
        except Exception as exc:
            raise InvalidModelError(f"Cannot read the weights file '{path}': {exc}", hint="Re-save it.") from exc
    elif fmt in ("pickle", "torchscript"):
        state = _torch_load_safely(torch, path)
    else:
        raise UsageError(f"'{path}' is a {fmt} file, not a weights file.",
                         hint="Give a state dict saved with torch.save(model.state_dict()) or safetensors.")
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"'{path}' does not hold a state dict (name → tensor).",
                         hint="Save weights with torch.save(model.state_dict(), path).")
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:20]}" + (f" (+{len(missing) - 20} more)" if len(missing) > 20 else ""))
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:20]}" + (f" (+{len(unexpected) - 20} more)" if len(unexpected) > 20 else ""))
        if mismatched:
            parts.append("shape mismatches " + ", ".join(
                f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:10]))
        raise UsageError(f"The weights in '{path}' do not fit the model: " + "; ".join(parts) + ".",
                         hint="Check that the factory builds the same architecture the weights were saved from.")
    module.load_state_dict(state)


def _torch_load_safely(torch, path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(exc).__name__:
            raise InvalidModelError(
                f"Refused to load '{path}': it is a pickle that needs more than plain tensors to load "
                f"(it could run code). edgekit never falls back to unsafe unpickling.",
                hint="Re-save only the weights: torch.save(model.state_dict(), path), or use safetensors.") from exc
        raise InvalidModelError(f"Cannot read the weights file '{path}': {text.splitlines()[0][:300]}",
                                hint="The file may be truncated or not a PyTorch checkpoint.") from exc


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
    result = ExportResult(None, used, note, _opset_of(proto), [i.__dict__ | {"shape": list(i.shape)} for i in source.inputs],
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


def _quiet_torch() -> None:
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
    for node in _all_nodes(proto.graph):
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


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def _opset_of(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


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

"""SPEC resolution for the PyTorch exporter: what the user names becomes a module in eval mode and its example inputs.

Accepted SPEC forms (anything else is a UsageError that lists them):

    zoo:NAME                   a model of edgekit.zoo, with its declared inputs, output names and dynamic axes
    package.module:factory     an importable module and a callable that builds the model with no arguments
    path/to/file.py:factory    the same from a file (imported under a private name, its folder on sys.path meanwhile)
    model.pt2                  a torch.export program (torch.export.save), inputs from its example inputs
    model.pt / .pth (TorchScript archive)   only with trust_torchscript: loading it runs its code
    state dicts, pickles, safetensors, .onnx, .tflite   refused with what to give instead

Weights (`--weights`) are a state dict: safetensors, or a torch.save file read with weights_only=True (never an unsafe
unpickle); every missing, unexpected or mis-shaped key is listed. Example input shapes come from the zoo entry, the
.pt2 program or `--input-shape` (one per input, rank checked). Kept apart from export so the resolution rules read in one
place and can be tested without exporting anything.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect as pyinspect
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.deps import require
from edgekit.errors import InvalidModelError, UsageError
from edgekit.fileio import sniff_format
from edgekit.inputs import parse_shape


@dataclass
class InputSpec:
    """One example input of the model: its name, shape and dtype (shape () until --input-shape gives one)."""
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


def _quiet_torch() -> None:
    """torch.export and the ONNX exporters log at INFO/WARNING for their developers; users see our messages only."""
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


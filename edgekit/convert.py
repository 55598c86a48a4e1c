"""`edgekit convert`: compile an ONNX model to TFLite, validate it against ONNX Runtime, write it atomically
with edgekit metadata (version, source, input shapes and layouts, validation figures)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import __version__
from edgekit.activation_scale import scaled_atol
from edgekit.int8_sensitivity import PERTURBATION, reference_sensitivity
from edgekit.errors import UnsupportedModelError, UsageError, ValidationError
from edgekit.tensors import dequantize_int8 as _dequantized, from_layout, quantize_int8 as _quantized, to_layout  # noqa: F401

TARGETS = ("tflite",)
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
#: default (atol, rtol) per compiled mode; int8 judges in quantization steps of each output instead of atol
TOLERANCES = {"float32": (DEFAULT_ATOL, DEFAULT_RTOL), "fp16": (1e-4, 1e-2), "dynamic": (1e-4, 5e-2),
              "int8": (None, 0.02)}  # int8: steps, plus 2 % of scale for rounding that accumulates in deep models
INT8_STEPS = 4  # int8: max |TFLite - ONNX Runtime| in output quantization steps
TOP1_MIN = 0.9  # quantized modes: top-1 agreement below this is flagged in the report (the numeric gate decides:
#               on seeded random inputs near-tied logits flip without any real error, as compare's gates also assume)
SAMPLES = {"float32": 1, "fp16": 1, "dynamic": 8, "int8": 8}  # seeded validation inputs per mode


@dataclass
class ConvertResult:
    source: str
    output: str | None
    to: str
    compile_seconds: float
    validate_seconds: float
    size_bytes: int
    ops: dict
    input_shapes: dict
    io_layouts: dict
    atol: float
    rtol: float
    passed: bool
    outputs: list = field(default_factory=list)  # OutputDiff.as_dict() per output, with its "atol" and "passed"
    written: bool = False
    mode: str = "float32"  # float32 | fp16 | dynamic | int8
    quantization: dict = field(default_factory=dict)  # notes, float islands, int8 I/O parameters, steps
    validated_shapes: list = field(default_factory=list)  # the input shapes validation ran at (dynamic dims filled)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def convert(in_path, out_path, to: str = "tflite", input_shapes=None, nhwc_io: bool = False,
            atol: float | None = None, rtol: float | None = None, force: bool = False, keep_invalid: bool = False,
            seed: int = 0, progress: Callable[[str], None] | None = None, precision: str = "auto",
            int8_io: bool = False) -> ConvertResult:
    """Compile `in_path` (ONNX) to `out_path`; ValidationError (nothing written) if outputs diverge.

    precision: "auto" follows the model (QDQ → int8, dynamic-quantized → dynamic, float16 → fp16, else float32);
    "fp16" or "dynamic" on a float32 model. Default tolerances depend on the mode (TOLERANCES; int8 in steps).
    """
    from edgekit.fileio import atomic_write, check_output, sniff_format
    step = progress or (lambda _msg: None)
    if to not in TARGETS:
        raise UsageError(f"Unknown conversion target '{to}'.", hint=f"Choose one of: {', '.join(TARGETS)}.")
    fmt = sniff_format(in_path)
    if fmt != "onnx":
        raise UsageError(f"'{in_path}' is a {fmt} file; the TFLite compiler reads ONNX.",
                         hint="Export it first: edgekit export SPEC -o model.onnx.")
    out = check_output(out_path, (in_path,), force=force)
    step("compiling")
    from edgekit.converters.tflite import compile_onnx
    def compile_with(float_nodes=()):
        return compile_onnx(in_path, parse_input_shapes(input_shapes), nhwc_io, source=f"'{Path(in_path).name}'",
                            int8_io=int8_io, precision=precision, float_nodes=float_nodes)

    compiled = compile_with()
    mode = compiled.quantization.get("mode", "float32")
    default_atol, default_rtol = TOLERANCES[mode]
    rtol = default_rtol if rtol is None else rtol
    step("validating")
    started = time.perf_counter()

    activations = _activation_scales(in_path, compiled, seed) if atol is None and default_atol is not None else {}

    def judge(compiled):
        diffs = _merged_diffs(in_path, compiled, SAMPLES[mode], seed, compiled.quantization.get("io") or {})
        steps = output_steps(compiled) if mode == "int8" else {}
        limits = {d.name: (atol if atol is not None else scaled_atol(default_atol, activations.get(d.name))
                           if default_atol is not None else INT8_STEPS * steps.get(d.name, 0.0)) for d in diffs}
        passed = all(_output_passed(d, limits, steps, mode, rtol) for d in diffs)
        return diffs, steps, limits, passed

    diffs, steps, limits, passed = judge(compiled)
    if not passed and mode == "int8":
        compiled, (diffs, steps, limits, passed) = _measured_islands(in_path, compiled, compile_with, judge, step,
                                                                     tuple(range(seed, seed + SAMPLES[mode])))
    quant = {k: v for k, v in compiled.quantization.items() if k != "mode"}
    scaled = {d.name: activations[d.name] for d in diffs if limits[d.name] < (default_atol or 0.0)
              and d.name in activations}
    if scaled:
        quant["activation_scales"] = scaled
        quant.setdefault("notes", []).append(
            "validation judged against the float model's activations: atol=" + f"{default_atol:g} × the scale of "
            "the float values each output is computed from, where that is below 1 (" + ", ".join(
                f"'{n}': {a:.3g}" for n, a in scaled.items()) + "): a near-zero output is held to its own numbers")
    if steps:
        quant["output_steps"] = steps
        quant["steps_off"] = {d.name: d.max_abs / steps[d.name] for d in diffs if steps.get(d.name)}
    result = ConvertResult(str(in_path), str(out), to, compiled.seconds, time.perf_counter() - started, 0,
                           compiled.op_histogram, compiled.input_shapes, compiled.io_layouts,
                           max(limits.values(), default=0.0), rtol, passed,
                           [d.as_dict() | {"atol": limits[d.name], "passed": _output_passed(d, limits, steps, mode, rtol)}
                            for d in diffs],
                           mode=mode, quantization=quant,
                           validated_shapes=validation_shapes(in_path, compiled.input_shapes))
    sensitivity = _reference_sensitivity(in_path, compiled, steps, seed, SAMPLES[mode]) if not passed else {}
    if sensitivity:
        quant["reference_sensitivity_steps"] = sensitivity
        quant.setdefault("notes", []).append(
            "ONNX Runtime's QDQ model itself moves by " + ", ".join(f"{v:.1f} steps ('{k}')" for k, v in
                                                                   sensitivity.items())
            + f" when its float inputs move by {PERTURBATION:g} (relative): differences of that size are the "
            "quantized model's rounding, not the conversion (edgekit.int8_sensitivity)")
    pieces = _file_pieces(compiled, _metadata(in_path, compiled, result))
    result.size_bytes = sum(len(p) for p in pieces)
    if passed or keep_invalid:
        step("writing")
        atomic_write(out, lambda tmp: _write_pieces(tmp, pieces))
        result.written = True
    if not passed:
        worst = max(diffs, key=lambda d: (d.nonfinite > 0, d.max_abs / max(d.scale, 1e-12)))
        err = ValidationError(
            f"The TFLite model's output '{worst.name}' differs from ONNX Runtime by {worst.max_abs:.3g} "
            + (f"where both are finite, and {worst.nonfinite} of its values are NaN or infinite where ONNX Runtime's "
               f"are finite " if worst.nonfinite else "")
            + f"(output scale {worst.scale:.3g}; tolerance atol={limits[worst.name]:g} + rtol={rtol:g}·scale"
            + (f", {INT8_STEPS} quantization steps" if steps and atol is None else "")
            + (f"; atol is {default_atol:g} × the activation scale {activations[worst.name]:.3g} of the float values "
               f"it is computed from" if worst.name in scaled else "")
            + (f"; top-1 agreement {worst.top1_agreement:.2f}" if worst.top1_agreement is not None
               and mode != "float32" else "")
            + (f"; after computing {len(quant['measured_islands'])} measured op(s) in float"
               if quant.get("measured_islands") else "")
            + (f"; ONNX Runtime's QDQ model itself moves by {sensitivity[worst.name]:.1f} steps when its float "
               f"inputs move by {PERTURBATION:g}, so a difference of that size is the quantized model's own rounding "
               f"(compare it with float on real data: edgekit compare)" if sensitivity.get(worst.name) else "")
            + "). "
            + (f"It was written anyway to '{out}' (--keep-invalid)." if keep_invalid else "Nothing was written."),
            hint="Loosen --atol/--rtol if the difference is acceptable, or pass --keep-invalid to write the model "
                 "anyway; report it if it looks like a compiler bug.")
        err.result = result
        raise err
    return result


#: weights above which the validated file keeps METADATA_ROOM spaces after its metadata, so the written file is those
#: bytes with the final metadata in place (writer.metadata_in_place): VGG-11-BN packs in 3.7 s, once instead of twice
BIG_MODEL_BYTES = 32 << 20
METADATA_ROOM = 256 << 10


def _packed(compiled) -> bytes:
    """The compiled model's file as validation runs it, packed once per compiled model."""
    data = getattr(compiled, "_packed_file", None)
    if data is None:
        from edgekit.converters.tflite import writer
        weights = sum(t.data.nbytes for t in compiled.graph.tensors.values() if t.data is not None)
        writer.set_metadata(compiled.model, compiled.metadata, METADATA_ROOM if weights > BIG_MODEL_BYTES else 0)
        data = compiled._packed_file = writer.serialize(compiled.model)
    return data


def _file_pieces(compiled, metadata: dict) -> list:
    """The file to write, as pieces: the validated bytes with `metadata` in place when it fits the room left for
    it, else the model packed again with it (small models, which leave no room)."""
    from edgekit.converters.tflite import writer
    data = getattr(compiled, "_packed_file", None)
    pieces = writer.metadata_in_place(data, metadata) if data is not None else None
    if pieces is None:
        return [compiled.to_bytes(metadata)]
    compiled.metadata = metadata
    writer.set_metadata(compiled.model, metadata)
    return pieces


def _write_pieces(path, pieces) -> None:
    with open(path, "wb") as fh:
        for piece in pieces:
            fh.write(piece)


def _activation_scales(in_path, compiled, seed: int) -> dict:
    """{output: the scale of the float activations it is computed from} (edgekit.activation_scale), at the first
    validation shapes; {} when ONNX Runtime cannot expose them (the gate then keeps its plain atol)."""
    from edgekit.activation_scale import activation_scales
    try:
        return activation_scales(in_path, validation_shapes(in_path, compiled.input_shapes)[0], seed)
    except Exception:  # noqa: BLE001 - an intermediate ORT cannot return: judge as before, never fail for this
        return {}


def _reference_sensitivity(in_path, compiled, steps: dict, seed: int, samples: int) -> dict:
    """INT8 outside its gate: how far the QDQ reference itself moves under an imperceptible input change
    (edgekit.int8_sensitivity), reported beside the difference; {} for other modes or when it cannot be measured."""
    if not steps:
        return {}
    try:
        return reference_sensitivity(in_path, validation_shapes(in_path, compiled.input_shapes)[0], steps,
                                     seeds=tuple(range(seed, seed + samples)))
    except Exception:  # noqa: BLE001 - a diagnostic: the refusal stands and says what it can without it
        return {}


def _output_passed(diff, limits: dict, steps: dict, mode: str, rtol: float) -> bool:
    """The gate on one output (the run passes when every output does): within its atol (int8: INT8_STEPS of its
    quantization step) + rtol·scale; int8 outputs computed in float get rtol of at least 0.05."""
    return diff.within(limits[diff.name], rtol if diff.name in steps or mode != "int8" else max(rtol, 0.05))


def _measured_islands(in_path, compiled, compile_with, judge, step, seeds):
    """INT8 outside its gate: the ops whose int8 kernels drift from ONNX Runtime's QDQ model, measured tensor by
    tensor on the validation's inputs (edgekit.int8_islands), are compiled in float, a few per round, until the same gate passes or no op adds
    error of its own. Each chosen island is recorded with its measured error (quantization 'measured_islands')."""
    from edgekit.int8_islands import LOCAL_STEPS, ROUNDS, culprits, fixed_step_losses, measure
    onnx_bytes = Path(in_path).read_bytes()
    chosen, measured, verdict = [], [], None
    known = fixed_step_losses(onnx_bytes)  # fixed-output-step kernels far coarser than their quantizer: no need to measure
    if known:
        chosen += [r.node for r in known]
        measured += [r.as_dict() | {"fixed_step": True} for r in known]
        step(f"recompiling with {len(chosen)} fixed-output-step op(s) in float")
        compiled = compile_with(tuple(chosen))
        verdict = judge(compiled)
    for _ in range(ROUNDS):
        if verdict is not None and verdict[3]:
            break
        floats = {n for island in compiled.quantization.get("islands", []) for n in island["nodes"]}
        found = culprits(measure(onnx_bytes, compiled, seeds=seeds), floats)
        if not found:
            break
        chosen += [r.node for r in found]
        measured += [r.as_dict() for r in found]
        step(f"recompiling with {len(chosen)} measured float island(s)")
        compiled = compile_with(tuple(chosen))
        verdict = judge(compiled)
        if verdict[3]:
            break
    if verdict is None:
        verdict = judge(compiled)
    if measured:
        compiled.quantization["measured_islands"] = measured
        compiled.quantization.setdefault("notes", []).append(
            f"{len(chosen)} op(s) computed in float: their int8 kernels differed from ONNX Runtime's QDQ model by "
            f"more than {LOCAL_STEPS:g} quantization steps of their own (measured per tensor): "
            + ", ".join(f"{r['node']} ({r['op_type']}, {r['local_steps']:g} steps"
                        + (", its int8 kernel's fixed output step" if r.get("fixed_step") else "") + ")"
                        for r in measured))
    return compiled, verdict


def parse_input_shapes(shapes):
    """CLI strings ('x=1x3x64x64' or '1x3x64x64') → {name: dims} or [dims]; dicts/lists pass through."""
    if not shapes or isinstance(shapes, dict):
        return shapes or None
    from edgekit.inputs import parse_shape
    parsed = [parse_shape(s) if isinstance(s, str) else (None, tuple(s), None) for s in shapes]
    named = [p for p in parsed if p[0]]
    if named and len(named) != len(parsed):
        raise UsageError("Mix of named and unnamed --input-shape values.", hint="Name all of them (NAME=DIMS) or none.")
    return {n: d for n, d, _ in parsed} if named else [d for _, d, _ in parsed]


def output_steps(compiled) -> dict:
    """Output name → the quantization step (scale) of an INT8 model's output (int8 output, or the DEQUANTIZE
    input that makes it); outputs computed in float are absent."""
    g = compiled.graph
    made = g.producers()
    steps = {}
    for name in g.outputs:
        t, op = g.tensors[name], made.get(name)
        if op is not None and op.code in ("RESHAPE", "TRANSPOSE") and t.dtype.name == "float32":
            op = made.get(op.inputs[0])  # an output relayout after the dequantize
        if t.quant and t.dtype.name == "int8":
            steps[name] = float(t.quant["scale"][0])
        elif op is not None and op.code == "DEQUANTIZE" and g.tensors[op.inputs[0]].quant:
            steps[name] = float(g.tensors[op.inputs[0]].quant["scale"][0])
    return steps


def _merged_diffs(in_path, compiled, samples: int, seed: int, io_quant: dict) -> list:
    """Every sample at the first validation shapes, then one run at each further size of the dynamic dims (a model
    converted once must match at every size it is resized to, not only at the one it was exported at)."""
    from edgekit.metrics import merge
    data = _packed(compiled)
    check_litert_prepares(data, compiled.input_shapes)
    first, *others = validation_shapes(in_path, compiled.input_shapes)
    runs = [validate_tflite(in_path, data, first, compiled.io_layouts, seed=seed + i, io_quant=io_quant)
            for i in range(samples)]
    runs += [validate_tflite(in_path, data, shapes, compiled.io_layouts, seed=seed, io_quant=io_quant)
             for shapes in others]
    return [merge([run[k] for run in runs]) for k in range(len(runs[0]))] if len(runs) > 1 else runs[0]


def validation_shapes(onnx_source, input_shapes: dict) -> list[dict]:
    """The input shapes validation runs at: one set when every dim is static; else two, each dynamic dim at two
    sizes. Dims sharing a name in the ONNX model (input_ids and attention_mask: 'tokens') take the same size. The
    batch runs at 2 then 1; another dim at its export size (edgekit export records it; else 8), then half of it
    (a size that keeps the divisibility a down- and up-sampling net needs) or, when odd, one less."""
    dynamic = {(name, pos) for name, dims in input_shapes.items() for pos, d in enumerate(dims) if d == -1}
    if not dynamic:
        return [dict(input_shapes)]
    labels, exported = _dim_labels(onnx_source)
    sizes: dict = {}
    for name, pos in sorted(dynamic):
        key = labels.get((name, pos)) or (name, pos)
        if key in sizes:
            continue
        if pos == 0:
            sizes[key] = (2, 1)
            continue
        base = exported.get(name, [])[pos] if pos < len(exported.get(name, [])) else 0
        base = int(base) if isinstance(base, int) and base > 0 else 8
        other = base // 2 if base % 2 == 0 else base - 1
        sizes[key] = (base, other if other >= 1 and other != base else base + 1)
    return [{name: [sizes[labels.get((name, pos)) or (name, pos)][k] if d == -1 else d for pos, d in enumerate(dims)]
             for name, dims in input_shapes.items()} for k in (0, 1)]


def _dim_labels(onnx_source) -> tuple[dict, dict]:
    """({(input, dim): dim_param}, {input: export shape}) of an ONNX model (file, bytes or ModelProto); empty when
    unreadable."""
    import onnx
    try:
        model = onnx_source if isinstance(onnx_source, onnx.ModelProto) else \
            onnx.load_from_string(onnx_source) if isinstance(onnx_source, (bytes, bytearray)) else \
            onnx.load(str(onnx_source), load_external_data=False)
    except Exception:  # noqa: BLE001 - labels only choose sizes; validation reads the model itself
        return {}, {}
    labels = {(i.name, pos): d.dim_param for i in model.graph.input
              for pos, d in enumerate(i.type.tensor_type.shape.dim) if d.dim_param}
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        exported = json.loads(meta.get("edgekit.input_shapes", "{}"))
    except ValueError:
        exported = {}
    return labels, exported if isinstance(exported, dict) else {}


def check_litert_prepares(tflite_bytes: bytes, input_shapes: dict, timeout: float = 120.0) -> None:
    """Load and allocate the model in a forked child first: a kernel LiteRT cannot prepare may abort the process
    (the compile-time kernel checks catch the known cases; this makes any other one a clean refusal, not the end of
    edgekit). An ordinary refusal by LiteRT is left to validation, which reports its message; where fork is
    unavailable, or the child does not finish in `timeout` seconds, validation runs in this process as before."""
    if not hasattr(os, "fork"):
        return
    from ai_edge_litert.interpreter import Interpreter  # imported before the fork: the child takes no import lock
    pid = os.fork()
    if pid == 0:  # child: LiteRT only; leaves without cleanup handlers
        code = 0
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            interp = Interpreter(model_content=tflite_bytes, num_threads=1)
            for detail in interp.get_input_details():
                shape = [2 if d == -1 else d for d in input_shapes.get(detail["name"], detail["shape"])]
                if list(detail["shape"]) != shape:
                    interp.resize_tensor_input(detail["index"], shape)
            interp.allocate_tensors()
        except BaseException:  # noqa: BLE001 - validation reports LiteRT's own refusal
            code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        raise UnsupportedModelError(
            f"LiteRT aborted (signal {os.WTERMSIG(status)}) while preparing the compiled model's kernels: the model "
            f"would crash any app that loads it.", hint="Nothing was written. Please report the model: a compile-time "
                                                        "kernel check is missing for it.")


def validate_tflite(onnx_source, tflite_bytes: bytes, input_shapes: dict, io_layouts: dict | None = None,
                    seed: int = 0, threads: int | None = 1, io_quant: dict | None = None):
    """Run ONNX Runtime and LiteRT on the same seeded inputs; one OutputDiff per output (ONNX layout).

    io_quant: {name: {"scale", "zero_point"}} of int8 inputs/outputs (--int8-io): inputs are quantized and
    outputs dequantized so both sides compare real values."""
    from edgekit import runtimes
    from edgekit.inputs import validation_feeds
    from edgekit.metrics import diff

    onnx_bytes = Path(onnx_source).read_bytes() if isinstance(onnx_source, (str, os.PathLike)) else onnx_source
    with runtimes.load(onnx_bytes, runtime="onnxruntime", threads=threads) as ref, \
            runtimes.load(tflite_bytes, runtime="litert", threads=threads) as lite:
        feeds = validation_feeds(ref.inputs, input_shapes, seed)  # ids and masks in range, as export feeds them
        expected = ref.run(feeds)
        layouts = {i.name: i.layout for i in lite.inputs + lite.outputs if i.layout}
        layouts.update(io_layouts or {})
        io_quant = io_quant or {}
        got = lite.run({i.name: to_layout(_quantized(feeds[i.name], io_quant.get(i.name)), layouts.get(i.name))
                        for i in lite.inputs})
        return [diff(name, expected[name], from_layout(_dequantized(got[name], io_quant.get(name)), layouts.get(name)))
                for name in expected]


def _metadata(in_path, compiled, result: ConvertResult) -> dict:
    """edgekit.* keys, string-valued like ONNX metadata_props (JSON inside where structured)."""
    header = _onnx_header(in_path)  # read once for the carried keys and the dim labels
    validation = {"passed": result.passed, "atol": result.atol, "rtol": result.rtol, "shapes": result.validated_shapes,
                  "outputs": {o["name"]: {k: o[k] for k in ("max_abs", "max_rel", "scale", "cosine")}
                              for o in result.outputs}}
    return {
        **_carried_metadata(header),
        "edgekit.version": __version__,
        "edgekit.source": Path(in_path).name,
        "edgekit.input_shapes": json.dumps(compiled.input_shapes),
        "edgekit.io_layouts": json.dumps(compiled.io_layouts),
        **_dim_labels_metadata(header, compiled.input_shapes),
        "edgekit.validation": json.dumps(validation, default=float),
        "edgekit.quantization": json.dumps(dict(result.quantization, mode=result.mode), default=float),
    }


def _onnx_header(path):
    """The ONNX model at `path` without its initializers, read by skipping them in the file's protobuf encoding
    (ModelProto.graph = field 7; GraphProto.initializer = 5, sparse_initializer = 15): VGG-11-BN's header reads in
    milliseconds, onnx.load parses all 531 MB. A file this walk cannot follow is loaded whole."""
    import mmap

    import onnx
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            kept = bytearray()
            for field, start, body, end in _proto_fields(data, 0, len(data)):
                if field != 7:
                    kept += data[start:end]
                    continue
                graph = b"".join(data[s:e] for f, s, _, e in _proto_fields(data, body, end) if f not in (5, 15))
                kept += data[start:_read_varint(data, start)[1]] + _varint(len(graph)) + graph
            return onnx.ModelProto.FromString(bytes(kept))
    except (ValueError, OSError, IndexError):
        return onnx.load(str(path), load_external_data=False)


def _proto_fields(data, pos: int, end: int):
    """(field number, field start, payload start, field end) of each protobuf field in data[pos:end]."""
    while pos < end:
        start = pos
        tag, pos = _read_varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
            body = pos
        elif wire == 2:
            size, body = _read_varint(data, pos)
            pos = body + size
        elif wire in (1, 5):
            body, pos = pos, pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf field")
        yield tag >> 3, start, body, pos


def _read_varint(data, pos: int) -> tuple:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _dim_labels_metadata(model, input_shapes: dict) -> dict:
    """'edgekit.dim_labels': {input: {ONNX position: name}} of the dims left dynamic, so runtimes size a .tflite by
    the ONNX model's names (--dim tokens=32); absent when no dynamic dim has a name."""
    labels, _ = _dim_labels(model)
    named: dict = {}
    for (name, pos), label in labels.items():
        if pos < len(input_shapes.get(name, [])) and input_shapes[name][pos] == -1:
            named.setdefault(name, {})[str(pos)] = label
    return {"edgekit.dim_labels": json.dumps(named)} if named else {}


def _carried_metadata(model) -> dict:
    """The ONNX model's own edgekit.* keys (detection spec, text/processing info, labels, export provenance), so the
    .tflite alone tells apps what the ONNX told them; the keys convert computes replace theirs."""
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("edgekit.")}

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
from edgekit.errors import UsageError, ValidationError

TARGETS = ("tflite",)
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4


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
    outputs: list = field(default_factory=list)  # OutputDiff.as_dict() per output
    written: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def convert(in_path, out_path, to: str = "tflite", input_shapes=None, nhwc_io: bool = False,
            atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, force: bool = False, keep_invalid: bool = False,
            seed: int = 0, progress: Callable[[str], None] | None = None) -> ConvertResult:
    """Compile `in_path` (ONNX) to `out_path`; ValidationError (nothing written) if outputs diverge."""
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
    compiled = compile_onnx(in_path, parse_input_shapes(input_shapes), nhwc_io, source=f"'{Path(in_path).name}'")
    step("validating")
    started = time.perf_counter()
    diffs = validate_tflite(in_path, compiled.to_bytes(), compiled.input_shapes, compiled.io_layouts, seed=seed)
    passed = all(d.within(atol, rtol) for d in diffs)
    result = ConvertResult(str(in_path), str(out), to, compiled.seconds, time.perf_counter() - started, 0,
                           compiled.op_histogram, compiled.input_shapes, compiled.io_layouts, atol, rtol, passed,
                           [d.as_dict() for d in diffs])
    data = compiled.to_bytes(_metadata(in_path, compiled, result))
    result.size_bytes = len(data)
    if passed or keep_invalid:
        step("writing")
        atomic_write(out, data)
        result.written = True
    if not passed:
        worst = max(diffs, key=lambda d: d.max_abs / max(d.scale, 1e-12))
        err = ValidationError(
            f"The TFLite model's output '{worst.name}' differs from ONNX Runtime by {worst.max_abs:.3g} "
            f"(output scale {worst.scale:.3g}; tolerance atol={atol:g} + rtol={rtol:g}·scale). "
            + (f"It was written anyway to '{out}' (--keep-invalid)." if keep_invalid else "Nothing was written."),
            hint="Loosen --atol/--rtol if the difference is acceptable, or pass --keep-invalid to write the model "
                 "anyway; report it if it looks like a compiler bug.")
        err.result = result
        raise err
    return result


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


def validate_tflite(onnx_source, tflite_bytes: bytes, input_shapes: dict, io_layouts: dict | None = None,
                    seed: int = 0, threads: int | None = 1):
    """Run ONNX Runtime and LiteRT on the same seeded inputs; one OutputDiff per output (ONNX layout)."""
    from edgekit import runtimes
    from edgekit.metrics import diff

    onnx_bytes = Path(onnx_source).read_bytes() if isinstance(onnx_source, (str, os.PathLike)) else onnx_source
    rng = np.random.default_rng(seed)
    with runtimes.load(onnx_bytes, runtime="onnxruntime", threads=threads) as ref, \
            runtimes.load(tflite_bytes, runtime="litert", threads=threads) as lite:
        feeds = {}
        for info in ref.inputs:
            shape = [2 if d == -1 else d for d in input_shapes[info.name]]
            feeds[info.name] = rng.standard_normal(shape).astype(info.dtype)
        expected = ref.run(feeds)
        layouts = {i.name: i.layout for i in lite.inputs + lite.outputs if i.layout}
        layouts.update(io_layouts or {})
        got = lite.run({i.name: to_layout(feeds[i.name], layouts.get(i.name)) for i in lite.inputs})
        return [diff(name, expected[name], from_layout(got[name], layouts.get(name))) for name in expected]


def to_layout(array: np.ndarray, layout: str | None) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if layout == "NHWC" else array


def from_layout(array: np.ndarray, layout: str | None) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if layout == "NHWC" else array


def _metadata(in_path, compiled, result: ConvertResult) -> dict:
    """edgekit.* keys, string-valued like ONNX metadata_props (JSON inside where structured)."""
    validation = {"passed": result.passed, "atol": result.atol, "rtol": result.rtol,
                  "outputs": {o["name"]: {k: o[k] for k in ("max_abs", "max_rel", "scale", "cosine")}
                              for o in result.outputs}}
    return {
        "edgekit.version": __version__,
        "edgekit.source": Path(in_path).name,
        "edgekit.input_shapes": json.dumps(compiled.input_shapes),
        "edgekit.io_layouts": json.dumps(compiled.io_layouts),
        "edgekit.validation": json.dumps(validation, default=float),
    }

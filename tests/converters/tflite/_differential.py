"""The one differential test helper of the TFLite compiler: ONNX Runtime vs LiteRT on seeded inputs, judged by the
library's own gate for the compiled precision (edgekit.convert: TOLERANCES, INT8_STEPS, _output_passed), so a test
passes only where `edgekit convert` would write the model. float32, fp16, dynamic-range and int8 (the reference is
ONNX Runtime on the QDQ model itself, as convert runs it) go through `differential`; `assert_converts` asserts it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import parser

from edgekit.converters.tflite import compile_onnx
from edgekit.convert import from_layout, to_layout


def as_model(onnx_text_or_model) -> onnx.ModelProto:
    """ONNX text (parsed, shapes inferred) or a ModelProto, checked; a file path is loaded as convert reads it,
    unchecked (ONNX Runtime's float16 converter writes graphs the checker calls unsorted, and both runtimes run)."""
    if isinstance(onnx_text_or_model, os.PathLike):
        return onnx.load(str(onnx_text_or_model))
    if isinstance(onnx_text_or_model, str):
        model = parser.parse_model(onnx_text_or_model)
        for out in model.graph.output:  # text rows write `float y`: let shape inference fill outputs in
            if not out.type.tensor_type.shape.dim:
                out.type.tensor_type.ClearField("shape")
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    else:
        model = onnx_text_or_model
    onnx.checker.check_model(model)
    return model


def seeded_inputs(model: onnx.ModelProto, seed: int = 0, shapes: dict | None = None) -> dict:
    """The inputs convert's validation feeds (edgekit.inputs.random_array): N(0,1) floats, small non-negative ints;
    a dynamic dim is 2 unless `shapes` names the input."""
    from edgekit.inputs import random_array
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = (shapes or {}).get(inp.name) or [d.dim_value or 2 for d in inp.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        feeds[inp.name] = random_array(dims, dtype, rng)
    return feeds


def run_both(model: onnx.ModelProto, compiled, feeds: dict, evaluator: str = "onnxruntime") -> tuple[dict, dict]:
    """ONNX Runtime (or onnx.reference, for ops ONNX Runtime has no kernel for) on `model` and LiteRT on `compiled`,
    same inputs (ONNX layout in, ONNX layout out); LiteRT's inputs are resized to the feeds' shapes, and int8 I/O
    (int8_io) is quantized/dequantized with its parameters."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.tensors import dequantize_int8, quantize_int8

    io_quant = compiled.quantization.get("io") or {}
    names = [o.name for o in model.graph.output]
    if evaluator == "onnx.reference":
        from onnx.reference import ReferenceEvaluator
        expected = dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))
    else:
        import onnxruntime as ort
        expected = dict(zip(names, ort.InferenceSession(model.SerializeToString(),
                                                        providers=["CPUExecutionProvider"]).run(None, feeds)))
    interp = Interpreter(model_content=compiled.to_bytes(), num_threads=1)
    details = {d["name"]: d for d in interp.get_input_details()}
    values = {name: to_layout(quantize_int8(arr, io_quant.get(name)), compiled.io_layouts.get(name))
              for name, arr in feeds.items()}
    for name, value in values.items():
        if list(details[name]["shape"]) != list(value.shape):
            interp.resize_tensor_input(details[name]["index"], value.shape)
    interp.allocate_tensors()
    for name, value in values.items():
        want = np.dtype(details[name]["dtype"])  # int64 inputs may compile to int32: the values must fit
        assert np.array_equal(value.astype(want).astype(value.dtype), value), f"{name}: values do not fit {want}"
        interp.set_tensor(details[name]["index"], value.astype(want))
    interp.invoke()
    got = {d["name"]: from_layout(dequantize_int8(interp.get_tensor(d["index"]), io_quant.get(d["name"])),
                                  compiled.io_layouts.get(d["name"]))
           for d in interp.get_output_details()}
    return expected, got


@dataclass
class Differential:
    """One comparison: the compiled model, one OutputDiff per output (worst over the samples), and the gate convert
    applies to them (atol per output, rtol; int8: quantization step per output)."""
    compiled: object
    mode: str
    diffs: list
    limits: dict
    rtol: float
    steps: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # output → LiteRT's values on the last sample (ONNX layout)
    expected: dict = field(default_factory=dict)  # output → the reference's values on the last sample

    def passed(self, name: str) -> bool:
        from edgekit.convert import _output_passed
        return _output_passed(self.by_name[name], self.limits, self.steps, self.mode, self.rtol)

    @property
    def by_name(self) -> dict:
        return {d.name: d for d in self.diffs}

    @property
    def steps_off(self) -> dict:
        """int8 output → max |ORT QDQ − LiteRT| in its quantization steps (outputs computed in float are absent)."""
        return {d.name: d.max_abs / self.steps[d.name] for d in self.diffs if self.steps.get(d.name)}

    def failures(self) -> list[str]:
        return [f"{d.name}: max_abs {d.max_abs:.3g} at scale {d.scale:.3g} outside convert's {self.mode} gate "
                f"(atol {self.limits[d.name]:.3g} + rtol {self.rtol:g}·scale; {d})"
                for d in self.diffs if not self.passed(d.name)]


def differential(onnx_text_or_model, inputs: dict | None = None, *, precision: str = "auto", input_shapes=None,
                 nhwc_io: bool = False, seed: int = 0, samples: int = 1, compiled=None, reference=None,
                 evaluator: str = "onnxruntime", **compile_options) -> Differential:
    """Compile (unless `compiled` is given), run ONNX Runtime and LiteRT on `inputs` or on `samples` seeded input
    sets (seed, seed+1, ...), and judge each output with convert's gate for the compiled mode; nothing asserted.

    reference: an equivalent ONNX model (text or proto) the reference runs instead, for a form ONNX Runtime cannot
    run (a batch-first bidirectional LSTM); evaluator "onnx.reference" for ops ONNX Runtime has no kernel for."""
    from edgekit.convert import INT8_STEPS, TOLERANCES, output_steps
    from edgekit.metrics import diff, merge

    source = onnx_text_or_model
    model = as_model(source)
    if compiled is None:
        compiled = compile_onnx(source if isinstance(source, os.PathLike) else model, input_shapes, nhwc_io,
                                precision=precision, **compile_options)
    shapes = {name: [2 if d == -1 else d for d in dims] for name, dims in compiled.input_shapes.items()}
    feed_sets = [inputs] if inputs is not None else [seeded_inputs(model, seed + i, shapes) for i in range(samples)]
    runs = []
    for feeds in feed_sets:
        expected, got = run_both(model if reference is None else as_model(reference), compiled, feeds, evaluator)
        for name, ref_value in expected.items():
            assert got[name].shape == ref_value.shape, f"{name}: shape {got[name].shape} != {ref_value.shape}"
        runs.append(([diff(name, ref_value, got[name]) for name, ref_value in expected.items()], got, expected))
    diffs = [merge([r[0][k] for r in runs]) for k in range(len(runs[0][0]))]
    mode = compiled.quantization.get("mode", "float32")
    default_atol, rtol = TOLERANCES[mode]
    steps = output_steps(compiled) if mode == "int8" else {}
    limits = {d.name: default_atol if default_atol is not None else INT8_STEPS * steps.get(d.name, 0.0) for d in diffs}
    return Differential(compiled, mode, diffs, limits, rtol, steps, runs[-1][1], runs[-1][2])


def assert_converts(onnx_text_or_model, inputs: dict | None = None, expect_ops=None, atol: float = 1e-5,
                    rtol: float = 1e-4, nhwc_io: bool = False, input_shapes=None, seed: int = 0,
                    precision: str = "auto", **options):
    """Compile, run both runtimes on the same inputs, assert every output passes convert's gate for its mode; return
    the compiled model.

    atol/rtol: the test's own bound, asserted as well as the gate, so it can only tighten (atol=0, rtol=0: exact;
    the default is float32's gate, which a test of a quantized mode widens for its own numbers).
    expect_ops: a set of TFLite builtins that must be exactly the ops emitted, or a dict of exact counts.
    """
    result = differential(onnx_text_or_model, inputs, precision=precision, input_shapes=input_shapes, nhwc_io=nhwc_io,
                          seed=seed, **options)
    failures = result.failures()
    assert not failures, "; ".join(failures)
    for d in result.diffs:
        assert d.within(atol, rtol), f"{d.name}: max_abs {d.max_abs:.3g} at scale {d.scale:.3g} " \
                                   f"outside the test's atol={atol} rtol={rtol} ({d})"
    ops = result.compiled.op_histogram
    if isinstance(expect_ops, dict):
        assert ops == expect_ops, f"emitted {ops}, expected {expect_ops}"
    elif expect_ops is not None:
        assert set(ops) == set(expect_ops), f"emitted {ops}, expected {sorted(expect_ops)}"
    return result.compiled


def init(name: str, array) -> str:
    """An initializer in ONNX text syntax."""
    array = np.asarray(array)
    kind = {"float32": "float", "float16": "float16", "int64": "int64", "int32": "int32", "int8": "int8"}[array.dtype.name]
    dims = "[" + ",".join(str(d) for d in array.shape) + "]" if array.ndim else ""
    if kind == "float16":  # the ONNX text parser reads float16 literals as their bit patterns
        array = array.view(np.uint16)
    values = ",".join(repr(float(v)) if kind == "float" else str(int(v)) for v in array.reshape(-1))
    return f"{kind}{dims} {name} = {{{values}}}"


def model_text(body: str, inputs: str, outputs: str, opset: int = 18, **inits) -> str:
    init_text = ", ".join(init(k, v) for k, v in inits.items())
    return (f'<ir_version: 8, opset_import: ["" : {opset}]>\n'
            f"g ({inputs}) => ({outputs}) " + (f"<{init_text}>" if init_text else "") + f" {{\n{body}\n}}")

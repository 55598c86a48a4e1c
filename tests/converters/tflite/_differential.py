"""The one differential test helper of the TFLite compiler: ONNX Runtime vs LiteRT on seeded inputs."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import parser

from edgekit.converters.tflite import compile_onnx
from edgekit.convert import from_layout, to_layout


def as_model(onnx_text_or_model) -> onnx.ModelProto:
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
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = (shapes or {}).get(inp.name) or [d.dim_value or 2 for d in inp.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        feeds[inp.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def assert_converts(onnx_text_or_model, inputs: dict | None = None, expect_ops=None, atol: float = 1e-5,
                    rtol: float = 1e-4, nhwc_io: bool = False, input_shapes=None, seed: int = 0, precision: str = "auto"):
    """Compile, run both runtimes on the same inputs, assert outputs agree at output scale; return the result.

    expect_ops: a set of TFLite builtins that must be exactly the ops emitted, or a dict of exact counts.
    """
    from ai_edge_litert.interpreter import Interpreter
    import onnxruntime as ort

    from edgekit.metrics import diff

    model = as_model(onnx_text_or_model)
    compiled = compile_onnx(model, input_shapes, nhwc_io, precision=precision)
    data = compiled.to_bytes()
    feeds = inputs if inputs is not None else seeded_inputs(model, seed)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in ref.get_outputs()], ref.run(None, feeds)))
    interp = Interpreter(model_content=data, num_threads=1)
    details = {d["name"]: d for d in interp.get_input_details()}
    for name, arr in feeds.items():
        arr = to_layout(arr, compiled.io_layouts.get(name))
        if list(details[name]["shape"]) != list(arr.shape):
            interp.resize_tensor_input(details[name]["index"], arr.shape)
    interp.allocate_tensors()
    for name, arr in feeds.items():
        value = to_layout(arr, compiled.io_layouts.get(name))
        want = np.dtype(details[name]["dtype"])  # int64 inputs may compile to int32: the values must fit
        assert np.array_equal(value.astype(want).astype(value.dtype), value), f"{name}: values do not fit {want}"
        interp.set_tensor(details[name]["index"], value.astype(want))
    interp.invoke()
    outs = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    for name, ref_value in expected.items():
        got = from_layout(outs[name], compiled.io_layouts.get(name))
        d = diff(name, ref_value, got)
        assert got.shape == ref_value.shape, f"{name}: shape {got.shape} != {ref_value.shape}"
        assert d.within(atol, rtol), f"{name}: max_abs {d.max_abs:.3g} at scale {d.scale:.3g} ({d})"
    ops = compiled.op_histogram
    if isinstance(expect_ops, dict):
        assert ops == expect_ops, f"emitted {ops}, expected {expect_ops}"
    elif expect_ops is not None:
        assert set(ops) == set(expect_ops), f"emitted {ops}, expected {sorted(expect_ops)}"
    return compiled


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

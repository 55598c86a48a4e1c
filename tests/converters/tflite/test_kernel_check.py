"""kernel_check: every emitted op is checked against LiteRT's kernel constraints before writing; a violation is a
collected problem naming the ONNX node (TflOp.origin), never an abort at load time or a raw writer exception."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.converters.tflite import kernel_check
from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor

Q = {"scale": [0.1], "zero_point": [0]}


def graph_of(op: TflOp, **tensors) -> TflGraph:
    g = TflGraph()
    for name, (dtype, quant) in tensors.items():
        g.tensors[name] = TflTensor(name, [2, 3], np.dtype(dtype), quant=quant)
    g.ops, g.inputs, g.outputs = [op], [n for n in op.inputs if n], list(op.outputs)
    return g


def ir_with(name: str, op_type: str) -> Graph:
    return Graph({}, [Node(op_type, name, [], [])], [], [], 13)


def problems(op: TflOp, **tensors) -> list:
    return kernel_check.check(graph_of(op, **tensors), ir_with("node_1", "Add"))


def test_int8_add_without_quantization_parameters_is_a_problem_naming_the_node():
    """LiteRT aborts the process allocating this op; the check refuses it first."""
    found = problems(TflOp("ADD", ["a", "b"], ["y"], origin="node_1"),
                     a=("int8", None), b=("int8", None), y=("int8", None))
    assert len(found) == 1 and found[0].node == "node_1" and found[0].op_type == "Add"
    assert "no quantization parameters" in found[0].reason


def test_quantized_int8_add_passes():
    assert not problems(TflOp("ADD", ["a", "b"], ["y"], origin="node_1"), a=("int8", Q), b=("int8", Q), y=("int8", Q))


def test_an_op_added_by_a_pass_is_traced_to_its_node():
    found = problems(TflOp("POW", ["a", "b"], ["y"], origin="node_1/requantize"),
                     a=("float32", None), b=("int32", None), y=("float32", None))
    assert found[0].node == "node_1" and "one dtype" in found[0].reason


@pytest.mark.parametrize("code,dtype", [("DIV", "int64"), ("POW", "int64"), ("ABS", "int64"), ("CAST", "uint64"),
                                        ("LOGICAL_AND", "int32")])
def test_dtypes_a_kernel_lacks_are_problems(code, dtype):
    inputs = ["a", "b"] if code in ("DIV", "POW", "LOGICAL_AND") else ["a"]
    found = problems(TflOp(code, inputs, ["y"], origin="node_1"), a=(dtype, None), b=(dtype, None), y=(dtype, None))
    assert found and dtype in found[0].reason


def test_an_unknown_option_is_a_problem_not_a_writer_crash():
    found = problems(TflOp("ADD", ["a", "b"], ["y"], {"bogus": 1}, origin="node_1"),
                     a=("float32", None), b=("float32", None), y=("float32", None))
    assert "bogus" in found[0].reason


def test_a_dtype_tflite_cannot_hold_is_a_problem():
    found = problems(TflOp("RESHAPE", ["a"], ["y"], origin="node_1"), a=("complex128", None), y=("complex128", None))
    assert "cannot hold" in found[0].reason


def test_int8_pad_must_keep_the_zero_point():
    found = problems(TflOp("PAD", ["a"], ["y"], origin="node_1"),
                     a=("int8", Q), y=("int8", {"scale": [0.1], "zero_point": [3]}))
    assert "zero point" in found[0].reason


def test_int8_concatenation_needs_the_output_scale():
    found = problems(TflOp("CONCATENATION", ["a", "b"], ["y"], {"axis": 0}, origin="node_1"),
                     a=("int8", Q), b=("int8", {"scale": [0.2], "zero_point": [0]}), y=("int8", Q))
    assert "without rescaling" in found[0].reason


def test_compile_refuses_a_kernel_violation_with_the_collected_error(monkeypatch):
    """A lowering that emitted an op LiteRT would abort on ends in UnsupportedModelError naming the node."""
    from _differential import as_model, model_text
    from edgekit.converters.tflite import compile_onnx
    from edgekit.errors import UnsupportedModelError
    monkeypatch.setitem(kernel_check.KERNEL_DTYPES, "ADD", {"int32"})
    with pytest.raises(UnsupportedModelError, match=r"Add_0 \(Add, opset 13\).*ADD takes int32"):
        compile_onnx(as_model(model_text("y = Add(x, x)", "float[2,3] x", "float y", opset=13)))

"""kernel_check refuses a TRANSPOSE whose perm LiteRT cannot use (an int64, repeated or out-of-range perm): XNNPACK
refuses such a model at load ("failed to delegate TRANSPOSE node", seen on a DistilBERT float model), and without the
delegate LiteRT reads an int64 perm as int32 and transposes wrongly. The check names the ONNX node at compile time."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.converters.tflite import kernel_check, writer
from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor

SHAPE = [1, 4, 2, 3]


def transpose_graph(perm, perm_dtype=np.int32, shape=SHAPE) -> TflGraph:
    g = TflGraph()
    out = [shape[p % len(shape)] if -len(shape) <= p < len(shape) else 1 for p in perm]
    g.tensors["x"] = TflTensor("x", list(shape), np.dtype(np.float32))
    g.tensors["perm"] = TflTensor("perm", [len(perm)], np.dtype(perm_dtype), data=np.asarray(perm, perm_dtype))
    g.tensors["y"] = TflTensor("y", out, np.dtype(np.float32))
    g.ops, g.inputs, g.outputs = [TflOp("TRANSPOSE", ["x", "perm"], ["y"], origin="transpose_1/to_onnx")], ["x"], ["y"]
    return g


def problems(g: TflGraph) -> list:
    return kernel_check.check(g, Graph({}, [Node("Transpose", "transpose_1", [], [])], [], [], 18))


def litert_result(g: TflGraph, x: np.ndarray):
    """The model's output in LiteRT (default delegates on), or the error LiteRT raised loading or running it."""
    from ai_edge_litert.interpreter import Interpreter
    try:
        interpreter = Interpreter(model_content=writer.serialize(writer.build_model(g)))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    except (RuntimeError, ValueError) as exc:
        return exc


@pytest.mark.parametrize("perm, dtype, reason", [
    ([0, 2, 1, 3], np.int64, "as int32 in LiteRT, not int64"),
    ([0, 1, 1, 3], np.int32, "permutation of its input's 4 axes, not [0, 1, 1, 3]"),
    ([0, 2, 1, 4], np.int32, "permutation of its input's 4 axes, not [0, 2, 1, 4]"),
    ([0, 2, 1], np.int32, "permutation of its input's 4 axes, not [0, 2, 1]"),
])
def test_a_perm_litert_cannot_use_is_a_problem_naming_the_node(perm, dtype, reason):
    found = problems(transpose_graph(perm, dtype))
    assert len(found) == 1 and found[0].node == "transpose_1" and found[0].op_type == "Transpose"
    assert reason in found[0].reason and "TRANSPOSE" in found[0].reason


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], [0, -2, 1, 3], [3, 2, 1, 0]])
def test_an_int32_permutation_passes_and_litert_computes_it(perm):
    g = transpose_graph(perm)
    assert not problems(g)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    np.testing.assert_array_equal(litert_result(g, x), np.transpose(x, perm))


def test_a_run_time_dim_does_not_matter_to_the_perm_rule():
    assert not problems(transpose_graph([0, 2, 1, 3], shape=[1, -1, 2, 3]))


@pytest.mark.parametrize("perm, dtype", [([0, 2, 1, 3], np.int64), ([0, 1, 1, 3], np.int32), ([0, 2, 1, 4], np.int32)])
def test_the_refused_perms_are_ones_litert_refuses_to_load(perm, dtype):
    """Why the rule exists: each refused model, written anyway, fails in LiteRT as DistilBERT's float model did."""
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    result = litert_result(transpose_graph(perm, dtype), x)
    assert isinstance(result, Exception) and "failed to delegate TRANSPOSE" in str(result)

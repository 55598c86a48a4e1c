"""Data movement is dtype-agnostic in ONNX: every such op on int32, int64 and bool data either matches ONNX Runtime
exactly or is refused at compile time (LiteRT's SPLIT has no bool kernel), never an error at load or a wrong value."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _differential import assert_converts
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

T = {"int32": TensorProto.INT32, "int64": TensorProto.INT64, "bool": TensorProto.BOOL}


def I(n, a):  # noqa: E743 - an int64 initializer
    return numpy_helper.from_array(np.asarray(a, np.int64), n)


CASES = {
 "Reshape":([helper.make_node("Reshape",["x","s"],["y"])],[I("s",[4,6])]),
 "Transpose":([helper.make_node("Transpose",["x"],["y"],perm=[0,2,1])],[]),
 "Concat":([helper.make_node("Concat",["x","x"],["y"],axis=2)],[]),
 "Split":([helper.make_node("Split",["x","sp"],["y","z"],axis=2)],[I("sp",[2,2])]),
 "SplitV":([helper.make_node("Split",["x","sp"],["y","z"],axis=2)],[I("sp",[1,3])]),
 "Slice":([helper.make_node("Slice",["x","a","b","c"],["y"])],[I("a",[1]),I("b",[3]),I("c",[2])]),
 "SliceStep":([helper.make_node("Slice",["x","a","b","c","d"],["y"])],[I("a",[0]),I("b",[4]),I("c",[2]),I("d",[2])]),
 "Gather":([helper.make_node("Gather",["x","i"],["y"],axis=1)],[I("i",[2,0,1])]),
 "GatherND":([helper.make_node("GatherND",["x","i"],["y"])],[I("i",[[0,1],[1,2]])]),
 "GatherElements":([helper.make_node("GatherElements",["x","i"],["y"],axis=2)],[I("i",np.zeros([2,3,4]))]),
 "Tile":([helper.make_node("Tile",["x","r"],["y"])],[I("r",[1,2,1])]),
 "Expand":([helper.make_node("Expand",["x","r"],["y"])],[I("r",[3,2,3,4])]),
 "Pad":([helper.make_node("Pad",["x","p"],["y"])],[I("p",[0,0,1,0,0,1])]),
 "Squeeze":([helper.make_node("Unsqueeze",["x","ax"],["u"]),helper.make_node("Squeeze",["u","ax"],["y"])],[I("ax",[1])]),
 "Where":([helper.make_node("Where",["c","x","x2"],["y"])],[numpy_helper.from_array(np.asarray([True,False,True,False]),"c")]),
 "CumSum":([helper.make_node("CumSum",["x","ax"],["y"])],[I("ax",1)]),
}


@pytest.mark.parametrize("dtype", list(T))
@pytest.mark.parametrize("name", list(CASES))
def test_moves_on_integer_and_bool_data_match_or_are_refused(name, dtype):
    if (name, dtype) in {("CumSum", "bool"), ("Where", "bool")}:
        pytest.skip("ONNX Runtime has no kernel for this pair, so there is no reference")
    nodes, inits = CASES[name]
    inputs = [helper.make_tensor_value_info("x", T[dtype], [2, 3, 4])]
    if name == "Where":
        inputs.append(helper.make_tensor_value_info("x2", T[dtype], [2, 3, 4]))
    outputs = [helper.make_tensor_value_info(o, T[dtype], None) for o in nodes[-1].output]
    model = onnx.shape_inference.infer_shapes(helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 17)]))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, [2, 3, 4]).astype(dtype) if dtype != "bool" else rng.random([2, 3, 4]) < 0.5
    feeds = {"x": x, "x2": x[::-1].copy()} if name == "Where" else {"x": x}
    try:
        compiled = compile_onnx(model)
    except UnsupportedModelError as exc:
        assert "in LiteRT" in str(exc), exc  # the kernel check names the builtin's dtypes
        return
    assert_converts(model, feeds, compiled=compiled, atol=0, rtol=0)  # integers and bools: exact


def test_int64_constants_chosen_at_run_time_follow_their_int32_result():
    """Where(mask, int64 constant, int64 constant): the result is computed at run time and becomes int32; the
    constants must agree with it (the BERT model of the coverage subset is the regression test of that rule)."""
    a = numpy_helper.from_array(np.arange(4, dtype=np.int64), "a")
    b = numpy_helper.from_array(np.full(4, 7, np.int64), "b")
    nodes = [helper.make_node("Where", ["m", "a", "b"], ["w"]),
             helper.make_node("Cast", ["w"], ["y"], to=TensorProto.FLOAT)]
    model = onnx.shape_inference.infer_shapes(helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("m", TensorProto.BOOL, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [a, b]),
        opset_imports=[helper.make_opsetid("", 17)]))
    m = np.asarray([True, False, True, False])
    assert_converts(model, {"m": m}, atol=0, rtol=0)

"""Old opsets and other exporters' habits: attributes that later became inputs, Dropout with its mask output,
initializers listed as graph inputs (IR 3), compiled and compared with ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _differential import assert_converts
from test_ops import Row, f32

X4 = "float[1,3,8,8] x"
ROWS = [
    Row("Dropout", 7, "d, mask = Dropout <ratio=0.3> (x)\ny = Relu(d)", X4, ops={"RELU"}, id="opset7_mask_unread"),
    Row("Dropout", 12, "d, mask = Dropout (x)\nm = Cast <to=1> (mask)\ny = Mul(d, m)", X4, ops={"MUL"},
        id="opset12_mask_read"),
    Row("Dropout", 10, "d, mask = Dropout <ratio=0.5> (x)\ny = Relu(d)", X4, ops={"RELU"}, id="opset10"),
]


BN = {"s": f32(3), "b": f32(3), "m": f32(3), "v": np.abs(f32(3)) + 0.5}
ROWS = ROWS + [
    Row("BatchNormalization", 7, "y = BatchNormalization <spatial=1, epsilon=0.001> (x, s, b, m, v)", X4,
        ops={"MUL", "ADD"}, inits=BN, id="opset7_spatial"),
    Row("MaxPool", 7, "y = MaxPool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]> (x)", X4,
        ops={"TRANSPOSE", "PADV2", "MAX_POOL_2D"}, id="opset7"),
    Row("Sum", 6, "y = Sum(x, x, x)", X4, ops={"ADD"}, id="opset6"),
    Row("Max", 6, "y = Max(x, x)", X4, ops={"MAXIMUM"}, id="opset6"),
    Row("Min", 6, "y = Min(x, x)", X4, ops={"MINIMUM"}, id="opset6"),
    Row("Mean", 6, "y = Mean(x, x)", X4, ops={"ADD", "MUL"}, id="opset6"),
]



@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def _ir3_model(nodes, inits, opset):
    """As exporters of the opset 7-9 era wrote them: IR 3, every initializer also listed as a graph input."""
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    for init in inits:
        graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3
    model = onnx.shape_inference.infer_shapes(model)
    return model


def test_an_ir3_classic_with_dropout_masks_converts_and_matches():
    inits = [numpy_helper.from_array(f32(4, 3, 3, 3), "w"), numpy_helper.from_array(f32(4), "b"),
             numpy_helper.from_array(f32(5, 64), "fc"), numpy_helper.from_array(f32(5), "fcb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Dropout", ["p"], ["d", "dmask"], ratio=0.5),
             helper.make_node("Flatten", ["d"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"])]
    assert_converts(_ir3_model(nodes, inits, 9), expect_ops={"TRANSPOSE", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                                             "FULLY_CONNECTED", "SOFTMAX"})


def test_batchnorm_spatial_0_is_refused_with_the_reason():
    from edgekit.converters.tflite import compile_onnx
    from edgekit.errors import UnsupportedModelError
    from _differential import as_model, model_text
    text = model_text("y = BatchNormalization <spatial=0> (x, s, b, m, v)", X4, "float y", 7, **BN)
    with pytest.raises(UnsupportedModelError, match="spatial=0"):
        compile_onnx(as_model(text))

"""1-D convolution and pooling (passes/conv1d.py): rank-3 [N,C,L] models compile as 2-D ops over a unit height."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text

R = np.random.default_rng(7)
X3 = "float[1,4,16] x"


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


W = {"w": f32(6, 4, 3), "b": f32(6)}
BN = {"s": f32(6), "o": f32(6), "m": f32(6), "v": np.abs(f32(6)) + 0.5}
# every row: one TRANSPOSE into NHWC at the input, one back at the [N,C,L] output (both real data moves),
# the Unsqueeze/Squeeze around the op become RESHAPEs that cancel_transposes folds away or keeps at the ends
ROWS = [
    ("plain", "y = Conv(x, w)", {"w": W["w"]}, {"TRANSPOSE": 2, "RESHAPE": 2, "CONV_2D": 1}),
    ("bias_same", "y = Conv <pads=[1,1]> (x, w, b)", W, {"TRANSPOSE": 2, "RESHAPE": 2, "CONV_2D": 1}),
    ("stride2", "y = Conv <strides=[2], pads=[1,1]> (x, w, b)", W, {"TRANSPOSE", "RESHAPE", "PAD", "CONV_2D"}),
    ("dilated", "y = Conv <dilations=[2], pads=[2,2]> (x, w, b)", W, {"TRANSPOSE", "RESHAPE", "CONV_2D"}),
    ("depthwise", "y = Conv <group=4, pads=[1,1]> (x, w, b)", {"w": f32(8, 1, 3), "b": f32(8)},
     {"TRANSPOSE", "RESHAPE", "DEPTHWISE_CONV_2D"}),
    ("transpose", "y = ConvTranspose <strides=[2], pads=[1,1], output_padding=[1]> (x, w, b)",
     {"w": f32(4, 6, 3), "b": f32(6)}, {"TRANSPOSE", "RESHAPE", "TRANSPOSE_CONV", "SLICE"}),
    ("maxpool", "y = MaxPool <kernel_shape=[2], strides=[2]> (x)", {}, {"TRANSPOSE", "RESHAPE", "MAX_POOL_2D"}),
    ("avgpool", "y = AveragePool <kernel_shape=[3], strides=[1], pads=[1,1], count_include_pad=1> (x)", {},
     {"TRANSPOSE", "RESHAPE", "PAD", "AVERAGE_POOL_2D"}),
    ("global_avg", "y = GlobalAveragePool(x)", {}, {"TRANSPOSE", "RESHAPE", "MEAN"}),
    ("global_max", "y = GlobalMaxPool(x)", {}, {"TRANSPOSE", "RESHAPE", "REDUCE_MAX"}),
    ("batchnorm", "y = BatchNormalization(x, s, o, m, v)", {k: v[:4] for k, v in BN.items()}, {"MUL", "ADD"}),
    ("conv_bn_relu", "c = Conv <pads=[1,1]> (x, w, b)\nn = BatchNormalization(c, s, o, m, v)\ny = Relu(n)",
     {**W, **BN}, {"TRANSPOSE": 2, "RESHAPE": 2, "CONV_2D": 1}),
]


@pytest.mark.parametrize("name,body,inits,ops", ROWS, ids=[r[0] for r in ROWS])
def test_conv1d(name, body, inits, ops):
    assert_converts(model_text(body, X3, "float y", 18, **inits), expect_ops=ops)


def test_opset_11_squeeze_attributes():
    assert_converts(model_text("c = Conv <pads=[1,1]> (x, w, b)\ny = Relu(c)", X3, "float y", 11, **W),
                    expect_ops={"TRANSPOSE": 2, "RESHAPE": 2, "CONV_2D": 1})


def test_stack_of_1d_layers_is_one_nhwc_chain():
    """Squeeze/Unsqueeze between layers cancel, elementwise ops (Relu, the residual Add) run on the 4-D value:
    no TRANSPOSE or RESHAPE between the convolutions."""
    body = ("a = Conv <pads=[1,1]> (x, w1, b1)\nr = Relu(a)\nc = Conv <pads=[2,2], dilations=[2]> (r, w2, b2)\n"
            "s = Add(c, x)\nt = Relu(s)\np = MaxPool <kernel_shape=[2], strides=[2]> (t)\ny = Conv(p, w3)")
    inits = {"w1": f32(4, 4, 3), "b1": f32(4), "w2": f32(4, 4, 3), "b2": f32(4), "w3": f32(5, 4, 1)}
    compiled = assert_converts(model_text(body, X3, "float y", 18, **inits))
    codes = [op.code for op in compiled.graph.ops]
    inner = codes[codes.index("CONV_2D"):len(codes) - 1 - codes[::-1].index("CONV_2D")]
    assert "TRANSPOSE" not in inner and "RESHAPE" not in inner, codes
    assert codes.count("TRANSPOSE") == 2, codes


def test_maxpool_indices_stay_unsupported():
    from edgekit.converters.tflite import compile_onnx

    from edgekit.errors import UnsupportedModelError
    model = as_model(model_text("y, i = MaxPool <kernel_shape=[2], strides=[2]> (x)", X3, "float y, int64 i"))
    with pytest.raises(UnsupportedModelError, match="MaxPool"):
        compile_onnx(model)

"""Full-integer INT8: per-op rows (ONNX Runtime on the QDQ model vs LiteRT on the compiled INT8 model, error in
quantization steps of the output), the QDQ folding contracts, and the digits LeNet end to end."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from _differential import as_model, differential, model_text
from _qdq import ort_qdq, steps_off, wrap_qdq
from edgekit.converters.tflite import compile_onnx

R = np.random.default_rng(7)


def f32(*shape, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(np.float32)


def i64(*values):
    return np.asarray(values, dtype=np.int64)


@dataclass
class Row:
    id: str
    body: str
    ops: set  # the TFLite ops emitted, exactly
    inputs: str = "float[1,3,8,8] x"
    inits: dict = field(default_factory=dict)
    maker: str = "ort"  # "ort": onnxruntime quantize_static; "wrap": Q/DQ around every activation
    steps: float = 1.01  # max |ORT - LiteRT| in output quantization steps
    opset: int = 13

    def float_model(self):
        return as_model(model_text(self.body, self.inputs, "float y", self.opset, **self.inits))


IO = {"QUANTIZE", "DEQUANTIZE"}
DATA_INPUT = {"SPLIT": 1, "TRANSPOSE_CONV": 2}
NCHW = IO | {"TRANSPOSE"}
W = {"w": f32(4, 3, 3, 3), "b": f32(4)}
ROWS = [
    Row("Conv", "y = Conv <pads=[1,1,1,1]> (x, w, b)", NCHW | {"CONV_2D"}, inits=W),
    Row("Conv-stride2_pad", "y = Conv <strides=[2,2], pads=[1,1,1,1]> (x, w, b)", NCHW | {"PAD", "CONV_2D"}, inits=W),
    Row("Conv-depthwise", "y = Conv <group=3, pads=[1,1,1,1]> (x, w, b)", NCHW | {"DEPTHWISE_CONV_2D"},
        inits={"w": f32(6, 1, 3, 3), "b": f32(6)}),
    Row("Conv-grouped", "y = Conv <group=2> (x, w, b)", NCHW | {"SPLIT", "CONV_2D", "CONCATENATION"},
        inputs="float[1,4,6,6] x", inits={"w": f32(6, 2, 3, 3), "b": f32(6)}),
    Row("Conv-relu", "c = Conv(x, w, b)\ny = Relu(c)", NCHW | {"CONV_2D"}, inits=W),
    Row("ConvTranspose", "y = ConvTranspose <strides=[2,2], pads=[1,1,1,1]> (x, w, b)", NCHW | {"TRANSPOSE_CONV"},
        inits={"w": f32(3, 5, 4, 4), "b": f32(5)}),
    Row("Gemm", "y = Gemm <transB=1> (x, w, b)", IO | {"FULLY_CONNECTED"}, inputs="float[2,16] x",
        inits={"w": f32(8, 16), "b": f32(8)}),
    Row("MatMul", "y = MatMul(x, w)", IO | {"FULLY_CONNECTED"}, inputs="float[2,16] x", inits={"w": f32(16, 8)}),
    Row("MatMul-3d", "y = MatMul(x, w)", IO | {"FULLY_CONNECTED"}, inputs="float[2,5,16] x", inits={"w": f32(16, 8)}),
    Row("Add", "y = Add(x, z)", IO | {"ADD"}, inputs="float[1,3,8,8] x, float[1,3,8,8] z"),
    Row("Add-const", "y = Add(x, k)", IO | {"ADD"}, inits={"k": f32(3, 1, 1)}),
    Row("Mul", "y = Mul(x, z)", IO | {"MUL"}, inputs="float[1,3,8,8] x, float[1,3,1,1] z"),
    Row("Sub", "y = Sub(x, z)", IO | {"SUB"}, inputs="float[1,3,8,8] x, float[1,3,8,8] z", maker="wrap"),
    Row("Relu", "y = Relu(x)", IO | {"RELU"}, maker="wrap"),
    Row("Clip-relu6", "y = Clip(x, lo, hi)", IO | {"RELU6"}, inits={"lo": np.float32(0), "hi": np.float32(6)},
        maker="wrap"),
    Row("Clip-min_max", "y = Clip(x, lo, hi)", IO | {"MAXIMUM", "MINIMUM"},
        inits={"lo": np.float32(-0.5), "hi": np.float32(0.7)}, maker="wrap"),
    Row("LeakyRelu", "y = LeakyRelu <alpha=0.2> (x)", IO | {"LEAKY_RELU"}),
    Row("Sigmoid", "y = Sigmoid(x)", IO | {"LOGISTIC"}),
    Row("Tanh", "y = Tanh(x)", IO | {"TANH"}, maker="wrap"),
    Row("HardSwish", "y = HardSwish(x)", IO | {"HARD_SWISH"}, maker="wrap", opset=14),
    Row("PRelu", "y = PRelu(x, s)", IO | {"PRELU"}, inits={"s": np.abs(f32(3, 1, 1)) * 0.3}, maker="wrap"),
    Row("MaxPool", "y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (x)", NCHW | {"MAX_POOL_2D"}, maker="wrap"),
    Row("MaxPool-pads", "y = MaxPool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]> (x)",
        NCHW | {"PADV2", "MAX_POOL_2D"}, maker="wrap"),
    # averaged at the input's scale, then requantized: two roundings
    Row("AveragePool", "y = AveragePool <kernel_shape=[2,2], strides=[2,2]> (x)", NCHW | {"AVERAGE_POOL_2D"}, steps=2.01, maker="wrap"),
    Row("GlobalAveragePool", "y = GlobalAveragePool(x)", IO | {"TRANSPOSE", "MEAN", "RESHAPE"}, maker="wrap"),
    Row("ReduceMean", "y = ReduceMean <axes=[2,3], keepdims=0> (x)", IO | {"MEAN"}, maker="wrap"),
    Row("Reshape", "y = Reshape(x, s)", IO | {"RESHAPE"}, inits={"s": i64(1, -1, 8)}, maker="wrap"),
    Row("Flatten", "y = Flatten(x)", IO | {"RESHAPE"}, maker="wrap"),
    Row("Transpose", "y = Transpose <perm=[0,2,3,1]> (x)", IO | {"TRANSPOSE"}, maker="wrap"),
    Row("Concat", "y = Concat <axis=1> (x, z)", IO | {"CONCATENATION"}, inputs="float[1,3,8,8] x, float[1,2,8,8] z"),
    Row("Pad", "y = Pad(x, p)", IO | {"PAD"}, inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}),
    Row("Resize-nearest", "y = Resize <mode=\"nearest\", coordinate_transformation_mode=\"asymmetric\", "
        "nearest_mode=\"floor\"> (x, , s)", NCHW | {"RESIZE_NEAREST_NEIGHBOR"},
        inits={"s": np.asarray([1, 1, 2, 2], np.float32)}, maker="wrap"),
    Row("Resize-bilinear", "y = Resize <mode=\"linear\", coordinate_transformation_mode=\"half_pixel\"> (x, , s)",
        NCHW | {"RESIZE_BILINEAR"}, inits={"s": np.asarray([1, 1, 2, 2], np.float32)}, maker="wrap"),
    Row("Softmax", "y = Softmax <axis=-1> (x)", IO | {"SOFTMAX"}, inputs="float[2,10] x"),
    Row("Slice", "y = Slice(x, s, e, a)", IO | {"SLICE"}, inits={"s": i64(1, 2), "e": i64(3, 7), "a": i64(1, 3)}, maker="wrap"),
    Row("Split", "a, b = Split <axis=1> (x, s)\ny = Add(a, b)", IO | {"SPLIT", "ADD"}, inputs="float[1,4,8,8] x",
        inits={"s": i64(2, 2)}),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_int8_op(row, tmp_path):
    model = row.float_model()
    qdq = ort_qdq(model, tmp_path) if row.maker == "ort" else wrap_qdq(model)
    compiled = compile_onnx(qdq)
    assert compiled.quantization["mode"] == "int8"
    assert compiled.quantization["islands"] == [], compiled.quantization["islands"]
    assert set(compiled.op_histogram) == row.ops, compiled.op_histogram
    g = compiled.graph
    for op in g.ops:  # everything between the model's float I/O runs on int8 tensors
        if op.code in ("QUANTIZE", "DEQUANTIZE") or set(op.inputs) & set(g.inputs) or set(op.outputs) & set(g.outputs):
            continue
        data = op.inputs[DATA_INPUT.get(op.code, 0)]
        assert g.tensors[data].dtype == np.int8, (op.code, data)
    for name, steps in steps_off(qdq, compiled).items():
        assert steps <= row.steps, f"{name}: {steps:.2f} quantization steps off ONNX Runtime"


# -- QDQ folding contracts

def _conv_float():
    return as_model(model_text("c = Conv <pads=[1,1,1,1]> (x, w, b)\ny = Sigmoid(c)", "float[1,3,8,8] x", "float y",
                               13, w=W["w"], b=W["b"]))


def _conv_qdq(tmp_path, **kwargs):
    return ort_qdq(_conv_float(), tmp_path, **kwargs)


def test_weights_are_symmetric_int8_per_output_channel_with_int32_bias(tmp_path):
    compiled = compile_onnx(_conv_qdq(tmp_path))
    g = compiled.graph
    conv = next(op for op in g.ops if op.code == "CONV_2D")
    x, w, b = (g.tensors[n] for n in conv.inputs)
    assert w.dtype == np.int8 and w.quant["axis"] == 0 and len(w.quant["scale"]) == 4 and not any(w.quant["zero_point"])
    assert b.dtype == np.int32
    np.testing.assert_allclose(b.quant["scale"], np.asarray(w.quant["scale"]) * x.quant["scale"][0], rtol=1e-6)
    sig = next(op for op in g.ops if op.code == "LOGISTIC")  # fixed output parameters, then requantized
    assert g.tensors[sig.outputs[0]].quant["scale"] == [1 / 256] and g.tensors[sig.outputs[0]].quant["zero_point"] == [-128]
    assert compiled.op_histogram["QUANTIZE"] == 2


def test_depthwise_channels_on_axis_3(tmp_path):
    model = as_model(model_text("y = Conv <group=3> (x, w, b)", "float[1,3,8,8] x", "float y", 13,
                                w=f32(6, 1, 3, 3), b=f32(6)))
    g = compile_onnx(ort_qdq(model, tmp_path)).graph
    dw = next(op for op in g.ops if op.code == "DEPTHWISE_CONV_2D")
    assert g.tensors[dw.inputs[1]].quant["axis"] == 3 and len(g.tensors[dw.inputs[1]].quant["scale"]) == 6


def test_asymmetric_uint8_weights_are_requantized_and_reported(tmp_path):
    """Requantized weights differ from ONNX Runtime's, so the oracle is the float model: the INT8 model must be
    about as close to it as ONNX Runtime's QDQ model is."""
    import onnxruntime as ort
    from _differential import run_both, seeded_inputs
    qdq = _conv_qdq(tmp_path, per_channel=False, weight="uint8")
    compiled = compile_onnx(qdq)
    notes = compiled.quantization["notes"]
    assert any("asymmetric" in n for n in notes), notes
    w = compiled.graph.tensors[next(op for op in compiled.graph.ops if op.code == "CONV_2D").inputs[1]]
    assert w.dtype == np.int8 and not any(w.quant["zero_point"])
    float_sess = ort.InferenceSession(_conv_float().SerializeToString(), providers=["CPUExecutionProvider"])
    err_ort, err_tflite = [], []
    for seed in range(100, 104):
        feeds = seeded_inputs(qdq, seed)
        ref = float_sess.run(None, feeds)[0]
        expected, got = run_both(qdq, compiled, feeds)
        err_ort.append(np.abs(expected["y"] - ref).mean())
        err_tflite.append(np.abs(got["y"] - ref).mean())
    assert np.mean(err_tflite) <= 1.25 * np.mean(err_ort), (err_tflite, err_ort)


def test_int8_activations_model_converts_too(tmp_path):
    qdq = _conv_qdq(tmp_path, activation="int8")
    compiled = compile_onnx(qdq)
    assert max(steps_off(qdq, compiled).values()) <= 1.01


def test_int8_io_takes_and_returns_integers_with_their_scales(tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    qdq = _conv_qdq(tmp_path)
    compiled = compile_onnx(qdq, int8_io=True)
    assert "DEQUANTIZE" not in compiled.op_histogram
    io = compiled.quantization["io"]
    assert set(io) == {"x", "y"} and io["x"]["dtype"] == "int8"
    interp = Interpreter(model_content=compiled.to_bytes())
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert inp["quantization"] == pytest.approx((io["x"]["scale"], io["x"]["zero_point"]))
    int8_io, float_io = (differential(qdq, compiled=c, seed=3) for c in (compiled, compile_onnx(qdq)))
    assert not int8_io.failures(), int8_io.failures()
    np.testing.assert_allclose(int8_io.outputs["y"], float_io.outputs["y"], atol=1e-6)


def test_layers_kept_float_are_reported_as_islands(tmp_path):
    model = as_model(model_text("c = Conv <pads=[1,1,1,1]> (x, w, b)\nd = Div(c, k)\ny = Conv(d, v)",
                                "float[1,3,8,8] x", "float y", 13, w=W["w"], b=W["b"], k=np.float32(3.0),
                                v=f32(2, 4, 1, 1)))
    qdq = ort_qdq(model, tmp_path)
    compiled = compile_onnx(qdq)
    islands = compiled.quantization["islands"]
    assert [i["ops"] for i in islands] == [["Div"]], islands
    assert "Div" in islands[0]["reason"]
    ops = compiled.op_histogram
    assert ops["CONV_2D"] == 2 and ops["DIV"] == 1 and ops["DEQUANTIZE"] == 2 and ops["QUANTIZE"] == 2
    assert max(steps_off(qdq, compiled).values()) <= 1.01


# -- the digits LeNet: edgekit quantize, then compile

@pytest.fixture(scope="module")
def lenet_qdq(tmp_path_factory):
    import torch
    from edgekit.quantize import Calibration, SpeedPolicy, quantize
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "quantize"))  # tests/quantize
    import digits_models as helpers
    root = tmp_path_factory.mktemp("lenet_int8")
    module, x, y = helpers.train_lenet_digits()
    float_path = helpers.export_onnx(module, x[:1], root / "lenet.onnx")
    np.savez(root / "calib.npz", image=x[:240])
    quantize(float_path, root / "lenet_qdq.onnx", mode="static", calibration=Calibration(str(root / "calib.npz")),
             speed=SpeedPolicy("off"))
    held = slice(len(x) - helpers.HELD_OUT, None)
    return float_path, root / "lenet_qdq.onnx", x[held], y[held]


def _scores(data_or_path, xs, runtime):
    from edgekit import runtimes
    with runtimes.load(data_or_path, runtime=runtime, threads=1) as sess:
        name = sess.inputs[0].name
        return np.concatenate([next(iter(sess.run({name: xs[i:i + 1]}).values())) for i in range(len(xs))])


def test_digits_lenet_int8_accuracy_and_agreement(lenet_qdq):
    float_path, qdq_path, xs, ys = lenet_qdq
    compiled = compile_onnx(qdq_path)
    assert compiled.quantization["islands"] == []
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(compiled.op_histogram)
    int8 = _scores(compiled.to_bytes(), xs, "litert")
    float_tflite = _scores(compile_onnx(float_path).to_bytes(), xs, "litert")
    ort_qdq_scores = _scores(str(qdq_path), xs, "onnxruntime")
    acc_float, acc_int8 = (float_tflite.argmax(1) == ys).mean(), (int8.argmax(1) == ys).mean()
    agreement = (int8.argmax(1) == ort_qdq_scores.argmax(1)).mean()
    assert acc_float > 0.85, acc_float
    assert acc_int8 >= acc_float - 0.01, (acc_int8, acc_float)
    assert agreement >= 0.99, agreement


def test_convert_cli_picks_int8_validates_in_steps_and_inspect_lists_tensors(lenet_qdq, tmp_path):
    import json
    from click.testing import CliRunner
    from edgekit.cli.convert_cmd import command as convert_cmd
    from edgekit.cli.inspect_cmd import command as inspect_cmd
    _, qdq_path, _, _ = lenet_qdq
    out, report = tmp_path / "lenet_int8.tflite", tmp_path / "convert.json"
    result = CliRunner().invoke(convert_cmd, [str(qdq_path), "-o", str(out), "--int8-io", "--json", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["mode"] == "int8" and data["passed"] and data["written"]
    assert set(data["quantization"]["io"]) == {"image", "logits"}
    assert data["quantization"]["steps_off"]["logits"] <= 4
    assert data["outputs"][0]["top1_agreement"] >= 0.9
    shown = CliRunner().invoke(inspect_cmd, [str(out), "--json", "-"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output[shown.output.index("{"):])
    tq = info["tensor_quantization"]
    assert tq["mode"] == "int8" and tq["per_channel"] >= 5 and set(tq["int8_io"]) == {"image", "logits"}
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["quantization"]["zero_point"] == [-128]


def test_convert_refuses_int8_for_a_float_model(lenet_qdq, tmp_path):
    from click.testing import CliRunner
    from edgekit.cli.convert_cmd import command as convert_cmd
    float_path = lenet_qdq[0]
    result = CliRunner().invoke(convert_cmd, [str(float_path), "-o", str(tmp_path / "x.tflite"), "--precision", "int8"])
    assert result.exit_code == 2 and "edgekit quantize" in result.output
    assert not (tmp_path / "x.tflite").exists()

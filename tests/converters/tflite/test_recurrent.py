"""Recurrent layers: one row per ONNX op version and variant, the zoo models at two sequence lengths, torch
modules through both exporters, and the check that keeps the stateful LiteRT sequence builtins out."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import assert_converts, differential
from edgekit.converters.tflite import compile_onnx
from test_ops import Row, f32

S, B, I, H = 5, 2, 3, 4  # steps, batch, input features, hidden
SEQ = f"float[{S},{B},{I}] x"
SEQ_BF = f"float[{B},{S},{I}] x"  # layout=1 (batch first)
STEP_OPS = {"FULLY_CONNECTED", "UNPACK", "PACK", "RESHAPE", "ADD", "TANH"}
GATED_OPS = STEP_OPS | {"SPLIT", "LOGISTIC", "MUL"}


def weights(gates: int, dirs: int = 1, bias: bool = True) -> dict:
    w = {"w": f32(dirs, gates * H, I), "r": f32(dirs, gates * H, H, scale=0.5)}
    if bias:
        w["bb"] = f32(dirs, 2 * gates * H)
    return w


ROWS = [
    Row("LSTM", 13, "y, yh, yc = LSTM <hidden_size=4> (x, w, r, bb)", SEQ, GATED_OPS, weights(4),
        id="forward_opset13", outputs="float y, float yh, float yc"),
    Row("LSTM", 14, "y, yh, yc = LSTM <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, , h0, c0)",
        SEQ + f", float[2,{B},{H}] h0, float[2,{B},{H}] c0", GATED_OPS - {"RESHAPE"}, weights(4, 2),
        id="bidirectional_initial_states", outputs="float y, float yh, float yc"),
    Row("LSTM", 14, "y, yh = LSTM <hidden_size=4, direction=\"reverse\", clip=0.5> (x, w, r, bb, , , , p)", SEQ,
        GATED_OPS | {"MAXIMUM", "MINIMUM"}, {**weights(4), "p": f32(1, 3 * H)}, id="reverse_clip_peepholes",
        outputs="float y, float yh"),
    Row("GRU", 13, "y, yh = GRU <hidden_size=4, linear_before_reset=1> (x, w, r, bb)", SEQ, GATED_OPS | {"SUB"},
        weights(3), id="torch_linear_before_reset", outputs="float y, float yh"),
    Row("GRU", 14, "y, yh = GRU <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, , h0)",
        SEQ + f", float[2,{B},{H}] h0", GATED_OPS - {"RESHAPE"} | {"SUB"}, weights(3, 2), id="bidirectional_reset_before",
        outputs="float y, float yh"),
    Row("RNN", 13, "y, yh = RNN <hidden_size=4> (x, w, r, bb, , h0)", SEQ + f", float[1,{B},{H}] h0", STEP_OPS,
        weights(1), id="forward_initial_h", outputs="float y, float yh"),
    Row("RNN", 14, "y = RNN <hidden_size=4, direction=\"bidirectional\", activations=[\"Relu\", \"Tanh\"]> "
        "(x, w, r)", SEQ, STEP_OPS - {"RESHAPE"}, weights(1, 2, bias=False), id="bidirectional_relu_nobias"),  # RELU fuses into ADD
    Row("GRU", 14, "y = GRU <hidden_size=4, clip=0.4> (x, w, r, bb)", SEQ, GATED_OPS | {"SUB", "MAXIMUM", "MINIMUM"},
        weights(3), id="clip_reset_before"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id}" for r in ROWS])
def test_recurrent_op(row):
    assert_converts(row.text(), expect_ops=row.ops)


@pytest.mark.parametrize("op,gates,extra", [("LSTM", 4, ""), ("GRU", 3, ", linear_before_reset=1"), ("RNN", 1, "")])
def test_batch_first_layout(op, gates, extra):
    """layout=1 against ONNX Runtime on the same recurrence in layout 0 between transposes (ORT has no layout=1)."""
    outs = "y, yh, yc" if op == "LSTM" else "y, yh"
    typed = ", ".join(f"float {o}" for o in outs.split(", "))
    init = f", float[{B},2,{H}] h0"
    w = weights(gates, 2)
    batch_first = Row(op, 14, f"{outs} = {op} <hidden_size=4, direction=\"bidirectional\", layout=1{extra}> "
                      f"(x, w, r, bb, , h0)", SEQ_BF + init, None, w, outputs=typed).text()
    seq_first = Row(op, 14, f"xt = Transpose <perm=[1,0,2]> (x)\nht = Transpose <perm=[1,0,2]> (h0)\n"
                    f"{', '.join(o + '_' for o in outs.split(', '))} = {op} <hidden_size=4, direction=\"bidirectional\""
                    f"{extra}> (xt, w, r, bb, , ht)\ny = Transpose <perm=[2,0,1,3]> (y_)\n"
                    + "\n".join(f"{o} = Transpose <perm=[1,0,2]> ({o}_)" for o in outs.split(", ")[1:]),
                    SEQ_BF + init, None, w, outputs=typed).text()
    feeds = {"x": f32(B, S, I), "h0": f32(B, 2, H)}
    result = differential(batch_first, feeds, reference=seq_first)
    assert not result.failures(), result.failures()
    for name, value in result.expected.items():  # and element by element
        np.testing.assert_allclose(result.outputs[name], value, atol=1e-5, rtol=1e-4, err_msg=name)


# ------------------------------------------------------------------ zoo models, two sequence lengths
@pytest.mark.parametrize("steps", [16, 40])
@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_zoo_recurrent_models(zoo_onnx, name, steps):
    path = zoo_onnx(name, f"1x{steps}x8")
    compiled = compile_onnx(path)
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)


# ------------------------------------------------------------------ torch modules, both exporters
class _Stack:
    """Factories for export: a recurrent stack returning its full output and final state(s)."""

    @staticmethod
    def build(cell: str, layers: int, bidirectional: bool, batch_first: bool):
        import torch
        from torch import nn

        class Stack(nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.rnn = getattr(nn, cell)(6, 5, num_layers=layers, bidirectional=bidirectional,
                                             batch_first=batch_first)

            def forward(self, x, h0):
                states = (h0, torch.tanh(h0)) if cell == "LSTM" else h0
                y, final = self.rnn(x, states)
                return y, final[0] if cell == "LSTM" else final

        return Stack().eval()


TORCH_CASES = [("LSTM", 2, True, True), ("LSTM", 1, False, False), ("GRU", 2, True, False), ("GRU", 1, False, True),
               ("RNN", 2, True, True)]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("cell,layers,bidirectional,batch_first", TORCH_CASES,
                         ids=[f"{c}-{n}layer-{'bi' if b else 'uni'}-{'bf' if f else 'sf'}" for c, n, b, f in TORCH_CASES])
def test_torch_recurrent_stacks(tmp_path, monkeypatch, exporter, cell, layers, bidirectional, batch_first):
    from edgekit.converters.torch_export import export
    factory = tmp_path / "stack.py"
    factory.write_text("from test_recurrent import _Stack\n"
                       f"def make():\n    return _Stack.build({cell!r}, {layers}, {bidirectional}, {batch_first})\n")
    dirs = 2 if bidirectional else 1
    x_shape = "2x7x6" if batch_first else "7x2x6"
    path = tmp_path / "stack.onnx"
    export(f"{factory}:make", path, input_shapes=[f"x={x_shape}", f"h0={layers * dirs}x2x5"], exporter=exporter)
    compiled = compile_onnx(path)
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)


# ------------------------------------------------------------------ why the LiteRT sequence builtins are not used
def test_litert_sequence_lstm_keeps_state_between_invokes():
    """UNIDIRECTIONAL_SEQUENCE_LSTM matches ONNX on the first invoke, then starts from the last final state."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    steps, hidden, features = 4, 3, 2
    x = rng.standard_normal((1, steps, features)).astype(np.float32)
    model = fb.ModelT()
    model.version, model.buffers, tensors = 3, [fb.BufferT()], []

    def tensor(shape, data=None, variable=False):
        t = fb.TensorT()
        t.shape, t.type, t.buffer, t.isVariable, t.name = list(shape), fb.TensorType.FLOAT32, 0, variable, f"t{len(tensors)}"
        if data is not None:
            buf = fb.BufferT()
            buf.data = np.frombuffer(data.astype(np.float32).tobytes(), np.uint8)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    xi = tensor(x.shape)
    gates = [tensor((hidden, features), rng.standard_normal((hidden, features))) for _ in range(4)]
    recurrent = [tensor((hidden, hidden), rng.standard_normal((hidden, hidden))) for _ in range(4)]
    biases = [tensor((hidden,), rng.standard_normal(hidden)) for _ in range(4)]
    states = [tensor((1, hidden), variable=True), tensor((1, hidden), variable=True)]
    yi = tensor((1, steps, hidden))
    op = fb.OperatorT()
    op.opcodeIndex, op.outputs = 0, [yi]
    op.inputs = [xi] + gates + recurrent + [-1] * 3 + biases + [-1] * 2 + states + [-1] * 4
    op.builtinOptionsType = fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions
    op.builtinOptions = fb.UnidirectionalSequenceLSTMOptionsT()
    op.builtinOptions.fusedActivationFunction = fb.ActivationFunctionType.TANH
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.version = 1
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = tensors, [xi], [yi], [op]
    model.operatorCodes, model.subgraphs = [code], [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    interp = Interpreter(model_content=bytes(builder.Output()), num_threads=1)
    interp.allocate_tensors()
    runs = []
    for _ in range(2):
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        runs.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
    # if this ever fails, LiteRT made the builtin stateless and recurrent.py could emit it
    assert np.abs(runs[0] - runs[1]).max() > 1e-3

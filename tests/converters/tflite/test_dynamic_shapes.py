"""Dynamic dimensions through the TFLite compiler: one model converted once runs at every size LiteRT resizes it
to and matches ONNX Runtime there; what cannot be dynamic is refused, naming the op, the dim and --input-shape."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from _differential import as_model, assert_converts, model_text
from test_ops import Row
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

MODELS = Path(__file__).with_name("dynamic_models.py")

#: Shape survives folding only where it reads a run-time dim (else it is a constant): SHAPE, GATHER of the dims read
ROWS = [
    Row("Shape", 13, "y = Shape(x)", "float[1,N] x", ops={"SHAPE": 1}, outputs="int64[2] y"),
    Row("Shape", 15, "y = Shape <start = 1> (x)", "float[1,N,4] x", ops={"SHAPE": 1, "GATHER": 1},
        outputs="int64[2] y"),
    Row("ConstantOfShape", 9, "s = Shape(x)\nm = ConstantOfShape <value = float[1] {3.0}> (s)\ny = Add(x, m)",
        "float[1,N] x", ops={"SHAPE": 1, "FILL": 1, "ADD": 1}),
    Row("Range", 18, "n = Shape <start = 1, end = 2> (x)\nl = Squeeze(n, zero)\ny = Range(start, l, step)",
        "float[1,N] x", ops={"SHAPE": 1, "GATHER": 1, "RESHAPE": 1, "RANGE": 1},
        inits={"zero": np.array([0]), "start": np.array(0), "step": np.array(1)}, outputs="int64 y"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)
ATOL, RTOL = 1e-5, 1e-4  # edgekit convert's float32 gate


def _export(spec: str, out: Path, shapes: list[str], axes: list[str]) -> Path:
    from edgekit.converters.torch_export import export
    export(f"{MODELS}:{spec}", out, input_shapes=shapes, dynamic_axes=axes, force=True)
    return out


def _assert_matches(onnx_path: Path, tflite: Path, feeds: dict) -> None:
    """ORT on the ONNX model vs edgekit's LiteRT session (which resizes its inputs per call), at one size."""
    from edgekit import runtimes
    from edgekit.metrics import diff
    want = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, feeds)
    with runtimes.load(str(tflite), runtime="litert", threads=1) as lite:
        got = lite.run(feeds)
    for (name, value), ref in zip(got.items(), want):
        assert value.shape == ref.shape, f"{name}: {value.shape} != {ref.shape} for inputs " \
                                         f"{ {k: v.shape for k, v in feeds.items()} }"
        d = diff(name, ref, value)
        assert d.within(ATOL, RTOL), f"{name} at {[v.shape for v in feeds.values()]}: {d}"


def test_bert_converted_once_runs_at_every_token_length_and_batch(tmp_path):
    from edgekit.convert import convert
    axes = [f"{n}:{d}={label}" for n in ("input_ids", "attention_mask") for d, label in ((0, "batch"), (1, "tokens"))]
    onnx_path = _export("tiny_bert", tmp_path / "bert.onnx", ["input_ids=1x16:int64", "attention_mask=1x16:int64"],
                        axes)
    result = convert(onnx_path, tmp_path / "bert.tflite")
    assert result.input_shapes == {"input_ids": [-1, -1], "attention_mask": [-1, -1]}
    # validated at two sizes of each dynamic dim, the shared 'tokens' dim equal in both inputs
    assert result.validated_shapes == [{"input_ids": [2, 16], "attention_mask": [2, 16]},
                                       {"input_ids": [1, 8], "attention_mask": [1, 8]}]
    assert {"SHAPE", "RESHAPE", "STRIDED_SLICE"} <= set(result.ops)
    from edgekit import runtimes
    from edgekit.inputs import resolve_shape
    with runtimes.load(str(tmp_path / "bert.tflite"), runtime="litert") as lite:  # --dim tokens=32 sizes the .tflite
        assert [i.shape for i in lite.inputs] == [("batch", "tokens")] * 2
        assert resolve_shape(lite.inputs[0], {"tokens": 32}, batch=4) == (4, 32)
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        for tokens in (8, 32, 128):
            ids = rng.integers(0, 512, (batch, tokens))
            mask = np.ones((batch, tokens), np.int64)
            mask[batch - 1, tokens // 2:] = 0  # a padded row: the attention bias path at this length
            _assert_matches(onnx_path, tmp_path / "bert.tflite", {"input_ids": ids, "attention_mask": mask})


def test_segmentation_net_with_dynamic_height_and_width(tmp_path):
    from edgekit.convert import convert
    onnx_path = _export("seg_net", tmp_path / "seg.onnx", ["x=1x3x32x32"], ["x:2=height", "x:3=width"])
    result = convert(onnx_path, tmp_path / "seg.tflite")
    assert result.input_shapes == {"x": [1, 3, -1, -1]}
    assert result.validated_shapes == [{"x": [1, 3, 32, 32]}, {"x": [1, 3, 16, 16]}]
    assert "RESIZE_NEAREST_NEIGHBOR" in result.ops and "CONV_2D" in result.ops
    rng = np.random.default_rng(1)
    for h, w in ((32, 32), (48, 24), (17, 9)):  # odd sizes too: the stride-2 conv pads explicitly, not SAME
        _assert_matches(onnx_path, tmp_path / "seg.tflite", {"x": rng.standard_normal((1, 3, h, w), np.float32)})
    meta = json.loads(_metadata(tmp_path / "seg.tflite")["edgekit.validation"])
    assert meta["shapes"] == result.validated_shapes


def _metadata(path: Path) -> dict:
    from edgekit.runtimes.litert import read_edgekit_metadata
    return read_edgekit_metadata(path.read_bytes())


@pytest.mark.parametrize("body, out_rank", [
    ("y = Slice(x, starts, ends, axes)", 2),  # 1:-1 of a run-time length (negative end counts from the end)
    ("n = Shape <start = 1, end = 2> (x)\ny = Slice(x, starts, n, axes)", 2),  # a run-time end
    ("y = Gather <axis = 1> (x, first)", 1),  # the [CLS] row of a run-time length
    ("s = Shape(x)\nt = Concat <axis = 0> (s, one)\ny = Reshape(x, t)", 3),  # two run-time dims: a shape tensor
    ("y = Unsqueeze(x, axes)", 3),
    ("s = Shape(x)\nm = ConstantOfShape <value = float[1] {2.5}> (s)\ny = Mul(x, m)", 2),
    ("n = Shape <start = 1, end = 2> (x)\nl = Squeeze(n, zero)\nr = Range(start, l, step)\nc = Cast <to = 1> (r)\n"
     "y = Add(x, c)", 2),  # position ids 0..N-1 of a run-time length
])
@pytest.mark.parametrize("length", [3, 6, 11])
def test_shape_arithmetic_at_run_time(body, out_rank, length):
    model = as_model(model_text(body, "float[B,N] x", "float y", opset=18, starts=np.array([1]),
                                ends=np.array([-1]), axes=np.array([1]), first=np.array(0),
                                one=np.array([1]), zero=np.array([0]), start=np.array(0), step=np.array(1)))
    x = np.arange(2 * length, dtype=np.float32).reshape(2, length)
    assert_converts(model, {"x": x}, atol=0, rtol=0)  # LiteRT resized to the input, exact


def test_an_op_that_cannot_be_dynamic_is_refused_naming_it_and_the_fix():
    model = as_model(model_text("y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (x)", "float[1,3,H,W] x",
                                "float y", opset=13))
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(model)
    text = str(info.value)
    assert "MaxPool" in text and "dynamic non-batch dimension [1, 3, -1, -1] (dim 2, 3)" in text
    assert "--input-shape NAME=DIMS" in text and "'x' dim 2 (H), 'x' dim 3 (W)" in text
    assert compile_onnx(model, input_shapes={"x": (1, 3, 8, 8)}).input_shapes == {"x": [1, 3, 8, 8]}


def test_a_resize_that_is_exact_only_at_some_sizes_is_refused():
    model = as_model(model_text("y = Resize <mode = \"linear\"> (x, , scales)", "float[1,3,H,W] x", "float y",
                                opset=13, scales=np.array([1, 1, 2, 2], np.float32)))
    with pytest.raises(UnsupportedModelError, match="only nearest, asymmetric, floor"):
        compile_onnx(model)


@pytest.mark.parametrize("attrs", ["pads = [1, 1, 1, 1]", "pads = [1, 1, 1, 1], strides = [2, 2]",
                                   "pads = [0, 2, 1, 0], strides = [2, 1]", "strides = [2, 2]"])
def test_conv_padding_is_exact_at_every_run_time_size(attrs):
    """SAME only where TFLite's split equals the ONNX pads at every size (stride 1, k - 1 split evenly); else
    an explicit PAD and VALID, whose output size floor((n + pads - k) / s) + 1 is ONNX's at odd sizes too."""
    w = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)
    model = as_model(model_text(f"y = Conv <{attrs}> (x, w)", "float[1,2,H,W] x", "float y", opset=13, w=w))
    compiled = compile_onnx(model, nhwc_io=False)
    for h, w_ in ((7, 8), (9, 5), (12, 12)):  # one model, LiteRT resized to each size
        assert_converts(model, {"x": np.random.default_rng(h).standard_normal((1, 2, h, w_)).astype(np.float32)},
                        compiled=compiled)


def test_softmax_flattened_at_sizes_is_refused_before_opset_13():
    model = as_model(model_text("y = Softmax <axis = 1> (x)", "float[1,N,4] x", "float y", opset=12))
    with pytest.raises(UnsupportedModelError, match="Softmax needs it static"):
        compile_onnx(model)


def test_constant_of_shape_fed_a_shape_by_the_app_is_refused():
    """A fed shape may hold 0: the empty tensor would fail at allocation, so only sizes of tensors are taken."""
    model = as_model(model_text("y = ConstantOfShape <value = float[1] {1.0}> (s)", "int64[2] s", "float y",
                                opset=18))
    with pytest.raises(UnsupportedModelError, match="its shape is a model input"):
        compile_onnx(model)

"""Transformer ops of recent opsets (SwiGLU, RotaryEmbedding, Attention): one row per op version and variant
(ONNX Runtime vs LiteRT; ONNX's reference evaluator where ONNX Runtime lacks the op), and the refused cases."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text, seeded_inputs
from test_ops import Row, f32
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

#: ops ONNX Runtime has no kernel for (yet): their rows are checked against ONNX's reference evaluator
REFERENCE_ONLY = {"SwiGLU"}
ROPE = {"GATHER", "RESHAPE", "SLICE", "MUL", "SUB", "ADD", "CONCATENATION"}
POS = {"p": np.array([[3, 0, 7]], np.int64)}


def caches(positions=8, half=4):
    angles = np.arange(positions)[:, None] / 10000 ** (np.arange(half)[None] / half)
    return {"c": np.cos(angles).astype(np.float32), "s": np.sin(angles).astype(np.float32)}


ROWS = [
    Row("SwiGLU", 28, "y = SwiGLU(x, z)", inputs="float[2,6] x, float[2,6] z", ops={"LOGISTIC": 1, "MUL": 2}),
    Row("SwiGLU", 28, "y = SwiGLU <alpha=1.702> (x, z)", inputs="float[2,3,4] x, float[2,3,4] z",
        ops={"LOGISTIC": 1, "MUL": 3}, id="alpha"),
    Row("RotaryEmbedding", 23, "y = RotaryEmbedding(x, c, s, p)", inputs="float[1,2,3,8] x", ops=ROPE,
        inits={**caches(), **POS}, id="4d_position_ids"),
    Row("RotaryEmbedding", 23, "y = RotaryEmbedding <interleaved=1> (x, c, s, p)", inputs="float[1,2,3,8] x",
        ops=ROPE - {"SLICE"} | {"STRIDED_SLICE"}, inits={**caches(), **POS}, id="interleaved"),
    Row("RotaryEmbedding", 23, "y = RotaryEmbedding <num_heads=2, rotary_embedding_dim=4> (x, c, s, p)",
        inputs="float[1,3,16] x", ops=ROPE, inits={**caches(half=2), **POS}, id="3d_partial"),
    Row("RotaryEmbedding", 23, "y = RotaryEmbedding(x, c, s)", inputs="float[1,2,3,8] x, float[1,3,4] c, "
        "float[1,3,4] s", ops=ROPE - {"GATHER"}, id="caches_per_position"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    if row.op in REFERENCE_ONLY:
        assert_matches_reference(row.text(), row.ops)
    else:
        assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def assert_matches_reference(text: str, expect_ops, rtol=1e-5):
    """The compiled model against onnx.reference on seeded inputs (for ops ONNX Runtime cannot run)."""
    from ai_edge_litert.interpreter import Interpreter
    from onnx.reference import ReferenceEvaluator

    model = as_model(text)
    feeds = seeded_inputs(model)
    expected = ReferenceEvaluator(model).run(None, feeds)
    compiled = compile_onnx(model)
    interp = Interpreter(model_content=compiled.to_bytes())
    interp.allocate_tensors()
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], feeds[detail["name"]])
    interp.invoke()
    got = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=rtol, atol=1e-6)
    assert compiled.op_histogram == expect_ops


def refused(text: str) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(text))
    return str(info.value)


def test_rotary_embedding_refuses_a_rotary_dim_that_is_odd():
    text = model_text("y = RotaryEmbedding <rotary_embedding_dim=3> (x, c, s, p)", "float[1,2,3,8] x", "float y", 23,
                      **caches(half=1), **POS)
    assert "rotary_embedding_dim=3 must be even" in refused(text)

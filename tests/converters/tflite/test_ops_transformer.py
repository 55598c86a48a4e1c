"""Transformer ops of recent opsets (SwiGLU, RotaryEmbedding, Attention): one row per op version and variant
(ONNX Runtime vs LiteRT; ONNX's reference evaluator where ONNX Runtime lacks the op), and the refused cases."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, differential, model_text
from test_ops import Row, f32
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

#: ops ONNX Runtime has no kernel for (yet): their rows are checked against ONNX's reference evaluator
REFERENCE_ONLY = {"SwiGLU"}
ROPE = {"GATHER", "RESHAPE", "SLICE", "MUL", "SUB", "ADD", "CONCATENATION"}
POS = {"p": np.array([[3, 0, 7]], np.int64)}
ATTN = {"MUL", "BATCH_MATMUL", "SOFTMAX"}
SPLIT_HEADS = {"RESHAPE", "TRANSPOSE"}
GUARD = {"REDUCE_MAX", "EQUAL", "SELECT_V2"}
QKV4 = "float[2,4,3,8] q, float[2,2,5,8] k, float[2,2,5,6] v"
QKV3 = "float[2,3,32] q, float[2,5,16] k, float[2,5,12] v"


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
    Row("Attention", 23, "y = Attention(q, k, v)", inputs="float[1,2,3,4] q, float[1,2,5,4] k, float[1,2,5,4] v",
        ops=ATTN, id="4d"),
    Row("Attention", 23, "y = Attention <is_causal=1, scale=0.3> (q, k, v)", inputs=QKV4,
        ops=ATTN | {"GATHER", "ADD"}, id="4d_gqa_causal_scaled"),
    Row("Attention", 23, "y = Attention <q_num_heads=4, kv_num_heads=2, softcap=2.0> (q, k, v, m)",
        inputs=QKV3 + ", float[3,5] m", ops=ATTN | SPLIT_HEADS | GUARD | {"GATHER", "ADD", "DIV", "TANH"},
        id="3d_gqa_softcap_float_mask"),
    Row("Attention", 23,
        "y, pk, pv, qk = Attention <is_causal=1, qk_matmul_output_mode=3> (q, k, v, m, past_k, past_v)",
        inputs="float[1,2,3,4] q, float[1,2,3,4] k, float[1,2,3,4] v, float[3,5] m, float[1,2,2,4] past_k, "
        "float[1,2,2,4] past_v", outputs="float y, float pk, float pv, float qk",
        ops=ATTN | GUARD | {"ADD", "CONCATENATION", "RESHAPE"}, id="past_present_mask_mode3"),
    Row("Attention", 24, "y = Attention(q, k, v, , , , n)", inputs=QKV4, ops=ATTN | GUARD | {"GATHER", "ADD", "CAST",
        "LESS_EQUAL", "RESHAPE"}, inits={"n": np.array([5, 3], np.int64)}, id="nonpad_kv_seqlen"),
    Row("Attention", 25, "y = Attention <is_causal=1, left_window_size=1> (q, k, v)", inputs=QKV4,
        ops=ATTN | {"GATHER", "ADD"}, id="causal_local_window"),
    Row("Attention", 25, "y = Attention <is_causal=1, left_window_size=2> (q, k, v, , , , n)", inputs=QKV4,
        ops=ATTN | GUARD | {"GATHER", "ADD", "CAST", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND", "RESHAPE"},
        inits={"n": np.array([5, 4], np.int64)}, id="nonpad_causal_window"),
    Row("TensorScatter", 24, "y = TensorScatter(x, u, w)", inputs="float[2,2,6,3] x, float[2,2,2,3] u",
        ops={"GATHER", "RESHAPE", "SELECT_V2"}, inits={"w": np.array([1, 4], np.int64)}, id="linear_constant_indices"),
    Row("TensorScatter", 24, "y = TensorScatter <mode=\"circular\", axis=1> (x, u)", inputs="float[2,5,3] x, "
        "float[2,3,3] u", ops={"GATHER", "RESHAPE", "SELECT_V2"}, id="circular_no_indices"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_op(row):
    if row.op in REFERENCE_ONLY:
        assert_matches_reference(row.text(), row.ops)
    else:
        assert_converts(row.text(), expect_ops=row.ops, nhwc_io=row.nhwc_io)


def assert_matches_reference(text: str, expect_ops, rtol=1e-5):
    """The compiled model against onnx.reference on seeded inputs (for ops ONNX Runtime cannot run): convert's gate,
    and element by element within rtol."""
    result = differential(text, evaluator="onnx.reference")
    assert not result.failures(), result.failures()
    for name, want in result.expected.items():
        np.testing.assert_allclose(result.outputs[name], want, rtol=rtol, atol=1e-6, err_msg=name)
    assert result.compiled.op_histogram == expect_ops


def refused(text: str) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(as_model(text))
    return str(info.value)


def test_rotary_embedding_refuses_a_rotary_dim_that_is_odd():
    text = model_text("y = RotaryEmbedding <rotary_embedding_dim=3> (x, c, s, p)", "float[1,2,3,8] x", "float y", 23,
                      **caches(half=1), **POS)
    assert "rotary_embedding_dim=3 must be even" in refused(text)


def attention_refusal(attrs: str) -> str:
    return refused(model_text(f"y = Attention <{attrs}> (q, k, v)", QKV4, "float y", 25))


def test_attention_refuses_a_softmax_in_double_precision():
    assert "softmax_precision=11" in attention_refusal("softmax_precision=11")


def test_attention_refuses_the_raw_qk_output_with_softcap_where_spec_and_reference_disagree():
    text = model_text("y, , , qk = Attention <softcap=2.0> (q, k, v)", QKV4, "float y, float qk", 23)
    assert "qk_matmul_output_mode=0 with softcap" in refused(text)


def test_attention_refuses_query_heads_that_are_no_multiple_of_the_kv_heads():
    text = model_text("y = Attention(q, k, v)", "float[1,3,2,4] q, float[1,2,2,4] k, float[1,2,2,4] v", "float y", 23)
    assert "3 query heads are not a multiple of 2" in refused(text)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_writes_at_run_time_indices(mode):
    """Write indices computed at run time (a KV-cache step); circular ones wrap past the end of the cache."""
    text = model_text(f'y = TensorScatter <mode="{mode}"> (x, u, w)', "float[3,2,5,4] x, float[3,2,2,4] u, int64[3] w",
                      "float y", 24)
    starts = [0, 3, 4] if mode == "circular" else [0, 3, 1]
    feeds = {"x": f32(3, 2, 5, 4), "u": f32(3, 2, 2, 4), "w": np.array(starts, np.int64)}
    ops = {"RESHAPE", "SUB", "MAXIMUM", "MINIMUM", "GREATER_EQUAL", "LESS", "LOGICAL_AND", "GATHER",
           "SELECT_V2"} | ({"FLOOR_MOD"} if mode == "circular" else set())
    assert_converts(text, feeds, expect_ops=ops)



def test_attention_refuses_past_key_without_past_value():
    text = model_text("y = Attention(q, k, v, , pk)", "float[1,2,3,4] q, float[1,2,3,4] k, float[1,2,3,4] v, "
                      "float[1,2,2,4] pk", "float y", 23)
    assert "past_key and past_value must be given together" in refused(text)

"""Attention models: one row per new op and fusion pattern, the transformer zoo model at two lengths, and
torch attention modules (BERT-style encoder with a padding mask, nn.MultiheadAttention, hand-written
causal attention) through both exporters."""
from __future__ import annotations

import math

import numpy as np
import pytest

from _differential import assert_converts
from edgekit.converters.tflite import compile_onnx
from test_ops import Row, f32, i64

X3 = "float[2,5,8] x"
LN_OPS = {"MEAN", "SUB", "MUL", "ADD", "RSQRT"}
F = np.float32
PAIR = "float[2,5,8] x, float[2,5,8] z"

ROWS = [
    # --- layer normalisation: the op, and the decomposed pattern the layernorm pass fuses
    Row("LayerNormalization", 17, "y = LayerNormalization <epsilon=0.001> (x, s, b)", X3, LN_OPS,
        {"s": f32(8), "b": f32(8)}, id="last_axis"),
    Row("LayerNormalization", 17, "y = LayerNormalization <axis=1> (x, s)", X3, LN_OPS, {"s": f32(5, 8)},
        id="two_axes_no_bias"),
    Row("LayerNormalization", 13, "m = ReduceMean <axes=[-1]> (x)\nd = Sub(x, m)\np = Pow(d, two)\n"
        "v = ReduceMean <axes=[-1]> (p)\ne = Add(v, eps)\ns = Sqrt(e)\nn = Div(d, s)\ng = Mul(n, gamma)\ny = Add(g, beta)",
        X3, LN_OPS, {"two": F(2), "eps": F(1e-5), "gamma": f32(8), "beta": f32(8)}, id="decomposed_pattern"),
    Row("LayerNormalization", 13, "m = ReduceMean <axes=[-1]> (x)\nd = Sub(x, m)\np = Mul(d, d)\n"
        "v = ReduceMean <axes=[-1]> (p)\ne = Add(v, eps)\ns = Sqrt(e)\ny = Div(d, s)",
        X3, {"MEAN", "SUB", "MUL", "ADD", "RSQRT"}, {"eps": F(1e-6)}, id="decomposed_no_affine"),
    # --- GELU: the op (opset 20) and the exact / tanh subgraphs the gelu pass fuses
    Row("Gelu", 20, "y = Gelu(x)", X3, {"GELU"}, id="exact"),
    Row("Gelu", 20, "y = Gelu <approximate=\"tanh\"> (x)", X3, {"GELU"}, id="tanh"),
    Row("Gelu", 18, "d = Div(x, k)\ne = Erf(d)\na = Add(e, one)\nm = Mul(half, a)\ny = Mul(x, m)", X3, {"GELU"},
        {"k": F(math.sqrt(2)), "one": F(1), "half": F(0.5)}, id="erf_pattern"),
    Row("Gelu", 18, "d = Mul(x, k)\ne = Erf(d)\na = Add(one, e)\nh = Mul(x, half)\ny = Mul(h, a)", X3, {"GELU"},
        {"k": F(1 / math.sqrt(2)), "one": F(1), "half": F(0.5)}, id="erf_pattern_half_first"),
    Row("Gelu", 18, "c = Pow(x, three)\nk = Mul(c, coef)\ni = Add(x, k)\ns = Mul(i, root)\nt = Tanh(s)\n"
        "a = Add(one, t)\nh = Mul(a, x)\ny = Mul(h, half)", X3, {"GELU"},
        {"three": F(3), "coef": F(0.044715), "root": F(math.sqrt(2 / math.pi)), "one": F(1), "half": F(0.5)},
        id="tanh_pattern"),
    # --- embeddings: run-time token ids
    Row("Gather", 13, "y = Gather(t, i)", "int64[2,5] i", {"FLOOR_MOD", "GATHER"}, {"t": f32(10, 4)},
        id="token_ids_int64"),
    # --- masks and logic
    Row("Equal", 13, "y = Equal(a, c)", "int64[2,6] a, int64[2,6] c", {"EQUAL"}, outputs="bool y"),
    Row("Less", 13, "y = Less(x, z)", PAIR, {"LESS"}, outputs="bool y"),
    Row("Greater", 13, "y = Greater(x, k)", X3, {"GREATER"}, {"k": f32(8)}, outputs="bool y"),
    Row("LessOrEqual", 16, "y = LessOrEqual(x, z)", PAIR, {"LESS_EQUAL"}, outputs="bool y"),
    Row("GreaterOrEqual", 16, "y = GreaterOrEqual(x, z)", PAIR, {"GREATER_EQUAL"}, outputs="bool y"),
    Row("Not", 13, "c = Less(x, z)\ny = Not(c)", PAIR, {"LESS", "LOGICAL_NOT"}, outputs="bool y"),
    Row("And", 13, "c = Less(x, z)\nd = Greater(x, k)\ny = And(c, d)", PAIR, {"LESS", "GREATER", "LOGICAL_AND"},
        {"k": F(0.2)}, outputs="bool y"),
    Row("Or", 13, "c = Less(x, z)\nd = Greater(x, k)\ny = Or(c, d)", PAIR, {"LESS", "GREATER", "LOGICAL_OR"},
        {"k": F(0.2)}, outputs="bool y"),
    Row("Where", 13, "c = Greater(x, k)\nw = Where(c, ninf, x)\ny = Softmax(w)", X3, {"GREATER", "SELECT_V2", "SOFTMAX"},
        {"k": F(1.0), "ninf": F(-np.inf)}, id="masked_fill_minus_inf"),
    Row("Where", 13, "y = Where(m, x, z)", "bool[1,5,8] m, " + PAIR, {"SELECT_V2"}, id="broadcast_condition"),
    Row("Cast", 13, "y = Cast <to=1> (i)", "int64[2,6] i", {"CAST"}, id="int64_to_float"),
    Row("Cast", 13, "c = Cast <to=9> (x)\ny = Not(c)", X3, {"CAST", "LOGICAL_NOT"}, id="float_to_bool",
        outputs="bool y"),
    Row("Expand", 13, "y = Expand(x, s)", "float[1,1,8] x", {"TILE"}, {"s": i64(2, 5, 8)}, id="same_rank"),
    Row("Expand", 13, "y = Expand(x, s)", "float[8] x", {"RESHAPE", "TILE"}, {"s": i64(2, 5, 1)}, id="new_axes"),
    Row("Tile", 13, "y = Tile(x, r)", X3, {"TILE"}, {"r": i64(1, 2, 3)}),
    # --- position ids: CumSum / Range of static sizes fold to constants; CumSum of run-time data is CUMSUM
    Row("CumSum", 14, "s = Shape(x)\no = ConstantOfShape <value=int64[1] {1}> (s)\nc = CumSum(o, a)\n"
        "p = Sub(c, o)\nf = Cast <to=1> (p)\ny = Add(x, f)", X3, {"ADD": 1}, {"a": np.asarray(1, np.int64)},
        id="position_ids_folded"),
    Row("Range", 14, "s = Shape(x)\nn = Gather <axis=0> (s, k)\nr = Range(zero, n, one)\nf = Cast <to=1> (r)\n"
        "y = Add(x, f)", "float[2,6,5] x", {"ADD": 1}, {"zero": np.asarray(0, np.int64), "one": np.asarray(1, np.int64),
        "k": np.asarray(2, np.int64)},
        id="arange_folded"),
    Row("CumSum", 14, "y = CumSum(x, a)", X3, {"CUMSUM": 1}, {"a": np.asarray(1, np.int64)}, id="run_time"),
    Row("CumSum", 14, "y = CumSum <exclusive=1, reverse=1> (x, a)", X3, {"CUMSUM": 1}, {"a": np.asarray(-1, np.int64)},
        id="exclusive_reverse"),
    # --- MatMul of a last-two-axes transpose: BATCH_MATMUL's adjX/adjY instead of a TRANSPOSE (matmul_adjoint pass)
    Row("BatchMatMul", 13, "t = Transpose <perm=[0,2,1]> (x)\ny = MatMul(t, z)", "float[2,5,8] x, float[2,5,3] z",
        {"BATCH_MATMUL": 1}, id="adj_x"),
    Row("BatchMatMul", 13, "t = Transpose <perm=[0,2,1]> (z)\ny = MatMul(x, t)", "float[2,5,8] x, float[2,3,8] z",
        {"BATCH_MATMUL": 1}, id="adj_y"),
    Row("BatchMatMul", 13, "t = Transpose <perm=[0,1,3,2]> (x)\nu = Transpose <perm=[0,1,3,2]> (z)\ny = MatMul(t, u)",
        "float[2,3,8,5] x, float[2,3,4,8] z", {"BATCH_MATMUL": 1}, id="both"),
    Row("BatchMatMul", 13, "t = Transpose <perm=[0,2,1]> (z)\nr = Reshape(t, s)\nm = Mul(r, k)\ny = MatMul(x, m)",
        "float[1,4,16,8] x, float[4,16,8] z", {"RESHAPE": 1, "MUL": 1, "BATCH_MATMUL": 1},
        {"s": i64(1, 4, 8, 16), "k": F(0.35)}, id="scaled_keys_reshaped"),
    Row("MatMul", 13, "t = Transpose <perm=[0,2,1]> (z)\ny = MatMul(x, t)\nw = Relu(t)",
        "float[2,5,8] x, float[2,3,8] z", {"TRANSPOSE", "BATCH_MATMUL", "RELU"}, id="transpose_shared_kept",
        outputs="float y, float w"),
    # --- Einsum equations that are matrix products (adjX/adjY absorb a transposed operand)
    Row("Einsum", 12, 'y = Einsum <equation="bij,bjk->bik"> (x, z)', "float[2,5,8] x, float[2,8,3] z",
        {"BATCH_MATMUL": 1}, id="batched"),
    Row("Einsum", 12, 'y = Einsum <equation="bhqd,bhkd->bhqk"> (x, z)', "float[2,3,5,8] x, float[2,3,7,8] z",
        {"BATCH_MATMUL": 1}, id="scores_adj_y"),
    Row("Einsum", 12, 'y = Einsum <equation="bhqk,bhkd->bhqd"> (x, z)', "float[2,3,5,7] x, float[2,3,7,8] z",
        {"BATCH_MATMUL": 1}, id="context"),
    Row("Einsum", 12, 'y = Einsum <equation="bhkq,bhkd->bhqd"> (x, z)', "float[2,3,7,5] x, float[2,3,7,8] z",
        {"BATCH_MATMUL": 1}, id="adj_x"),
    Row("Einsum", 12, 'y = Einsum <equation="ij,jk->ik"> (x, z)', "float[5,8] x, float[8,3] z", {"BATCH_MATMUL": 1},
        id="matrices"),
    Row("Einsum", 12, 'y = Einsum <equation="ij,jk->ik"> (x, w)', "float[5,8] x", {"FULLY_CONNECTED": 1},
        {"w": f32(8, 3)}, id="const_weight"),
    Row("Einsum", 12, 'y = Einsum <equation="bid,jd->bij"> (x, w)', X3, {"FULLY_CONNECTED": 1}, {"w": f32(6, 8)},
        id="dense_3d"),
    Row("Einsum", 12, 'y = Einsum <equation="bid,jd->bij"> (x, z)', "float[2,5,8] x, float[6,8] z",
        {"RESHAPE": 2, "BATCH_MATMUL": 1}, id="computed_weight"),
    Row("Einsum", 12, 'y = Einsum <equation="...ij,...jk->...ik"> (x, z)', "float[2,3,5,8] x, float[2,3,8,4] z",
        {"BATCH_MATMUL": 1}, id="ellipsis"),
    Row("Einsum", 12, 'y = Einsum <equation="bqd,bkd->bkq"> (x, z)', "float[2,5,8] x, float[2,7,8] z",
        {"BATCH_MATMUL": 1, "TRANSPOSE": 1}, id="output_transposed"),
    Row("Einsum", 12, 'y = Einsum <equation="bhqd,bkhd->bhqk"> (x, z)', "float[2,3,5,8] x, float[2,7,3,8] z",
        {"BATCH_MATMUL": 1, "TRANSPOSE": 1}, id="heads_second"),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id or r.opset}" for r in ROWS])
def test_attention_op(row):
    assert_converts(row.text(), expect_ops=row.ops)


UNSUPPORTED_EINSUM = {  # equation -> operands, from a = [2,5,5], p = [2,5], q = [2,8], z = [2,5,8], u = [2,8,3], v = [2,3,4]
    "bij->bj": "a",  # a reduction of one operand
    "bii,bij->bij": "a, z",  # a diagonal
    "bi,bj->bij": "p, q",  # an outer product
    "bij,bjk,bkl->bil": "z, u, v",  # three operands
}


def test_einsum_unsupported_equations_are_collected_with_the_equation():
    from edgekit.errors import UnsupportedModelError
    from _differential import as_model, model_text
    body = "\n".join(f'y{i} = Einsum <equation="{eq}"> ({args})' for i, (eq, args) in enumerate(UNSUPPORTED_EINSUM.items()))
    model = as_model(model_text(body, "float[2,5,5] a, float[2,5] p, float[2,8] q, float[2,5,8] z, float[2,8,3] u, "
                                "float[2,3,4] v", ", ".join(f"float y{i}" for i in range(len(UNSUPPORTED_EINSUM))),
                                opset=12))
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(model)
    reasons = [p["reason"] for p in info.value.problems]
    assert [p["op_type"] for p in info.value.problems] == ["Einsum"] * len(UNSUPPORTED_EINSUM), reasons
    for eq, reason in zip(UNSUPPORTED_EINSUM, reasons):
        assert repr(eq) in reason, reason


# ------------------------------------------------------------------ zoo transformer, two sequence lengths
@pytest.mark.parametrize("tokens", [16, 32])
def test_zoo_transformer(zoo_onnx, tokens):
    path = zoo_onnx("transformer", f"1x{tokens}")
    compiled = compile_onnx(path)
    assert {"GELU", "RSQRT", "BATCH_MATMUL", "SOFTMAX"} <= set(compiled.op_histogram), compiled.op_histogram
    assert "ERF" not in compiled.op_histogram
    # the key transpose of each layer is read by BATCH_MATMUL with adjY; TRANSPOSE stays at 10 (2 layers x q/k/v
    # head splits, the packed-projection split and the head merge), because the key's swap used to merge into
    # its head-split TRANSPOSE anyway
    assert compiled.op_histogram["TRANSPOSE"] == 10, compiled.op_histogram
    assert sum(op.options.get("adjY", False) for op in compiled.graph.ops if op.code == "BATCH_MATMUL") == 2
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)


# ------------------------------------------------------------------ torch attention modules
MODELS = '''
import torch
from torch import nn


class Bert(nn.Module):
    """Token + position embeddings, a 2-layer encoder, a padding mask (1 = token, 0 = padding)."""

    def __init__(self, float_mask):
        super().__init__()
        torch.manual_seed(0)
        self.tok, self.pos = nn.Embedding(50, 32), nn.Embedding(64, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.float_mask = float_mask

    def forward(self, tokens, mask):
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1]).unsqueeze(0))
        return self.enc(x, src_key_padding_mask=(mask < 0.5) if self.float_mask else (mask == 0))


class CrossAttention(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, q, kv):
        return self.mha(q, kv, kv, need_weights=False)[0]


class Causal(nn.Module):
    """Hand-written causal self-attention, tanh GELU and LayerNorm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.ln = nn.Linear(16, 48), nn.LayerNorm(16)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        b, s, _ = x.shape
        q, k, v = (t.view(b, s, 2, 8).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / 8 ** 0.5
        att = att.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, 16)
        return self.ln(nn.functional.gelu(y, approximate="tanh") + x)


def bert_bool_mask():
    return Bert(False).eval()


def bert_float_mask():
    return Bert(True).eval()


def cross_attention():
    return CrossAttention().eval()


def causal():
    return Causal().eval()
'''

CASES = {
    "bert_bool_mask": ["tokens=1x16:int64", "mask=1x16:int64"],
    "bert_float_mask": ["tokens=2x12:int64", "mask=2x12:float32"],
    "cross_attention": ["q=1x5x16", "kv=1x7x16"],
    "causal": ["x=1x6x16"],
}


def _feeds(name, shapes):
    rng = np.random.default_rng(1)
    feeds = {}
    for spec in shapes:
        key, rest = spec.split("=")
        dims = [int(d) for d in rest.split(":")[0].split("x")]
        if key == "tokens":
            feeds[key] = rng.integers(0, 50, dims).astype(np.int64)
        elif key == "mask":  # the last quarter of every sequence is padding
            mask = np.ones(dims)
            mask[:, -dims[1] // 4:] = 0
            feeds[key] = mask.astype(np.int64 if shapes[1].endswith("int64") else np.float32)
        else:
            feeds[key] = rng.standard_normal(dims).astype(np.float32)
    return feeds


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("name", list(CASES))
def test_torch_attention_modules(tmp_path, exporter, name):
    import onnx
    from edgekit.converters.torch_export import export
    from edgekit.metrics import diff
    from edgekit.runtimes import load
    source = tmp_path / "models.py"
    source.write_text(MODELS)
    path = tmp_path / f"{name}.onnx"
    export(f"{source}:{name}", path, input_shapes=CASES[name], exporter=exporter)
    compiled = compile_onnx(path)
    feeds = _feeds(name, CASES[name])
    with load(path, runtime="onnxruntime") as ref, load(compiled.to_bytes(), runtime="litert") as lite:
        expected, got = ref.run(feeds), lite.run(feeds)
    onnx_ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    for out, value in expected.items():
        d = diff(out, value, got[out])
        assert d.within(0.0, 1e-4), f"{name}/{out}: max_abs {d.max_abs:.3g} at scale {d.scale:.3g} ({onnx_ops})"

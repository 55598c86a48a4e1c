"""The transformer ops of recent opsets, composed from builtins on static shapes: SwiGLU (LOGISTIC, MUL),
RotaryEmbedding (GATHER of the caches, SLICE / STRIDED_SLICE halves, CONCATENATION), Attention (BATCH_MATMUL,
a constant or computed additive bias, SOFTMAX, and the spec's zero rows where every key is masked) and TensorScatter
(a KV-cache write: GATHER with batch_dims, SELECT_V2).

The numerics follow ONNX's reference implementation step by step (Attention scales Q and K each by sqrt(scale),
softcap divides, the bias is added after softcap), so results agree to float rounding."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

FLOAT = 1  # TensorProto.FLOAT, the one softmax_precision TFLite computes in


def _emit(b, code, inputs, shape, hint, dest=None, dtype=np.float32, **options) -> str:
    """Emit `code` into `dest` or a new temporary of `shape`; the tensor written."""
    dest = dest or b.temp(shape, dtype, hint=hint)
    b.emit(code, inputs, [dest], **options)
    return dest


def _scalar(b, value, hint, rank=1) -> str:
    return b.const(np.full([1] * rank, value, np.float32), hint=hint)


# --- SwiGLU ---------------------------------------------------------------------------------------------------------

@lowering("SwiGLU", since=28, emits=("LOGISTIC", "MUL"), layout="any")
def swiglu(b, a, v, *, alpha=1.0):
    """Y = A * sigmoid(alpha * A) * B (A and B have one shape, no broadcasting)."""
    if list(a.shape) != list(v.shape):
        raise Unsupported(f"A {list(a.shape)} and B {list(v.shape)} differ in shape; SwiGLU does not broadcast")
    shape = a.phys_shape
    gate_in = b.t(a)
    if alpha != 1.0:
        gate_in = _emit(b, "MUL", [gate_in, _scalar(b, alpha, "alpha", a.rank)], shape, "scaled_gate")
    gate = _emit(b, "LOGISTIC", [gate_in], shape, "sigmoid")
    swish = _emit(b, "MUL", [b.t(a), gate], shape, "swish")
    b.emit("MUL", [swish, b.t(v)], [b.out(b.outputs[0])])


# --- RotaryEmbedding ------------------------------------------------------------------------------------------------

ROTARY_EMITS = ("GATHER", "RESHAPE", "SLICE", "STRIDED_SLICE", "MUL", "SUB", "ADD", "CONCATENATION")


@lowering("RotaryEmbedding", since=23, emits=ROTARY_EMITS, dynamic_batch=False)
def rotary_embedding(b, x, cos_cache, sin_cache, position_ids=None, *, interleaved=0, num_heads=0,
                     rotary_embedding_dim=0):
    """Rotate the first `rotary_embedding_dim` features of each head by the cached angles of each position.

    A 4-D X is [batch, heads, seq, head]; a 3-D X is [batch, seq, heads * head] and is viewed as
    [batch, seq, heads, head]. The caches are [max_pos, rot/2] indexed by position_ids [batch, seq], or
    [batch, seq, rot/2] without position_ids."""
    y = b.outputs[0]
    if x.rank == 4:
        batch, _, seq, head = (int(d) for d in x.shape)
        x4, shape4 = b.t(x), [int(d) for d in x.shape]
        angle_shape = [batch, 1, seq]  # the caches broadcast over heads (axis 1)
    elif x.rank == 3:
        if not num_heads:
            raise Unsupported("a 3-D input needs the num_heads attribute")
        batch, seq, hidden = (int(d) for d in x.shape)
        if hidden % num_heads:
            raise Unsupported(f"the hidden size {hidden} is not a multiple of num_heads={num_heads}")
        head = hidden // num_heads
        shape4 = [batch, seq, num_heads, head]
        x4 = _emit(b, "RESHAPE", [b.t(x), b.ints(shape4)], shape4, "heads")
        angle_shape = [batch, seq, 1]  # the caches broadcast over heads (axis 2)
    else:
        raise Unsupported(f"X has rank {x.rank}; RotaryEmbedding takes a 3-D or 4-D input")
    rot = rotary_embedding_dim or head
    if rot % 2 or rot > head:
        raise Unsupported(f"rotary_embedding_dim={rot} must be even and at most the head size {head}")
    half = rot // 2
    angles = []
    for cache, name in ((cos_cache, "cos"), (sin_cache, "sin")):
        if int(cache.shape[-1]) != half:
            raise Unsupported(f"the {name} cache's last dimension {cache.shape[-1]} is not rotary_embedding_dim/2 "
                              f"= {half}")
        table = b.t(cache)
        if position_ids is not None:
            if cache.rank != 2:
                raise Unsupported(f"with position_ids the {name} cache must be 2-D, not {list(cache.shape)}")
            table = _emit(b, "GATHER", [table, b.t(position_ids)], [batch, seq, half], f"{name}_at", axis=0)
        elif cache.rank != 3:
            raise Unsupported(f"without position_ids the {name} cache must be 3-D, not {list(cache.shape)}")
        angles.append(_emit(b, "RESHAPE", [table, b.ints(angle_shape + [half])], angle_shape + [half], name))
    cos, sin = angles
    lead = shape4[:3]
    part = lead + [half]
    if interleaved:
        x1 = _emit(b, "STRIDED_SLICE", [x4, b.ints([0, 0, 0, 0], "begin"), b.ints(lead + [rot], "end"),
                                        b.ints([1, 1, 1, 2], "strides")], part, "even")
        x2 = _emit(b, "STRIDED_SLICE", [x4, b.ints([0, 0, 0, 1], "begin"), b.ints(lead + [rot], "end"),
                                        b.ints([1, 1, 1, 2], "strides")], part, "odd")
    else:
        x1 = _emit(b, "SLICE", [x4, b.ints([0, 0, 0, 0], "begin"), b.ints(part, "size")], part, "first_half")
        x2 = _emit(b, "SLICE", [x4, b.ints([0, 0, 0, half], "begin"), b.ints(part, "size")], part, "second_half")
    products = [_emit(b, "MUL", [c, v], part, "product") for c, v in ((cos, x1), (sin, x2), (sin, x1), (cos, x2))]
    real = _emit(b, "SUB", products[:2], part, "real")
    imag = _emit(b, "ADD", products[2:], part, "imag")
    if interleaved:
        pairs = [_emit(b, "RESHAPE", [t, b.ints(part + [1])], part + [1], "pair") for t in (real, imag)]
        woven = _emit(b, "CONCATENATION", pairs, part + [2], "woven", axis=4)
        pieces = [_emit(b, "RESHAPE", [woven, b.ints(lead + [rot])], lead + [rot], "rotated")]
    else:
        pieces = [real, imag]
    if rot < head:
        pieces.append(_emit(b, "SLICE", [x4, b.ints([0, 0, 0, rot], "begin"), b.ints(lead + [head - rot], "size")],
                            lead + [head - rot], "pass_through"))
    if x.rank == 4:
        if len(pieces) == 1:
            b.emit("RESHAPE", [pieces[0], b.ints(shape4)], [b.out(y)])
        else:
            b.emit("CONCATENATION", pieces, [b.out(y)], axis=3)
    else:
        whole = pieces[0] if len(pieces) == 1 else _emit(b, "CONCATENATION", pieces, shape4, "whole", axis=3)
        b.emit("RESHAPE", [whole, b.ints([int(d) for d in x.shape])], [b.out(y)])


# --- Attention ------------------------------------------------------------------------------------------------------

ATTENTION_EMITS = ("RESHAPE", "TRANSPOSE", "CONCATENATION", "GATHER", "MUL", "DIV", "TANH", "ADD", "BATCH_MATMUL",
                   "SOFTMAX", "SELECT_V2", "REDUCE_MAX", "EQUAL", "CAST", "LESS_EQUAL", "GREATER_EQUAL",
                   "LOGICAL_AND")
NEG_INF = np.float32(-np.inf)


@lowering("Attention", since=23, emits=ATTENTION_EMITS, dynamic_batch=False)
def attention_23(b, q, k, v, attn_mask=None, past_key=None, past_value=None, *, is_causal=0, kv_num_heads=0,
                 q_num_heads=0, qk_matmul_output_mode=0, scale=None, softcap=0.0, softmax_precision=None):
    _attention(b, q, k, v, attn_mask, past_key, past_value, None, is_causal, kv_num_heads, q_num_heads,
               qk_matmul_output_mode, scale, softcap, softmax_precision)


@lowering("Attention", since=24, emits=ATTENTION_EMITS, dynamic_batch=False)
def attention_24(b, q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *, is_causal=0,
                 kv_num_heads=0, q_num_heads=0, qk_matmul_output_mode=0, scale=None, softcap=0.0,
                 softmax_precision=None):
    _attention(b, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, is_causal, kv_num_heads, q_num_heads,
               qk_matmul_output_mode, scale, softcap, softmax_precision)


@lowering("Attention", since=25, emits=ATTENTION_EMITS, dynamic_batch=False)
def attention_25(b, q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *, is_causal=0,
                 kv_num_heads=0, q_num_heads=0, qk_matmul_output_mode=0, scale=None, softcap=0.0,
                 softmax_precision=None, left_window_size=-1, right_window_size=-1):
    _attention(b, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, is_causal, kv_num_heads, q_num_heads,
               qk_matmul_output_mode, scale, softcap, softmax_precision, left_window_size, right_window_size)


def _attention(b, q, k, v, attn_mask, past_key, past_value, nonpad, is_causal, kv_num_heads, q_num_heads, mode,
               scale, softcap, softmax_precision, left_window=-1, right_window=-1):
    """softmax(softcap(Q·s · (K·s)ᵀ) + bias) · V with s = sqrt(scale), as ONNX's reference computes it."""
    y, present_key_out, present_value_out, qk_out = (b.outputs + [None] * 4)[:4]
    if softmax_precision not in (None, FLOAT):
        raise Unsupported(f"softmax_precision={softmax_precision} asks for a softmax in another precision than "
                          "float32; TFLite's SOFTMAX computes in float32", hint="Drop the attribute or set it to 1.")
    if qk_out is not None and mode == 0 and softcap > 0:
        raise Unsupported("qk_matmul_output_mode=0 with softcap: the spec (the raw QK product) and ONNX's reference "
                          "(the softcapped product) disagree on this output")
    if qk_out is not None and mode not in (0, 1, 2, 3):
        raise Unsupported(f"qk_matmul_output_mode={mode} is not an ONNX value")
    if (past_key is None) != (past_value is None):
        raise Unsupported("past_key and past_value must be given together")
    if nonpad is not None and past_key is not None:
        raise Unsupported("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    if q.rank == 3:
        if not q_num_heads or not kv_num_heads:
            raise Unsupported("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
        q4, k4, v4 = (_split_heads(b, t, h, name) for t, h, name in
                      ((q, q_num_heads, "q"), (k, kv_num_heads, "k"), (v, kv_num_heads, "v")))
    elif q.rank == 4:
        if q_num_heads or kv_num_heads:
            raise Unsupported("q_num_heads/kv_num_heads are only defined for 3-D inputs")
        q4, k4, v4 = b.t(q), b.t(k), b.t(v)
    else:
        raise Unsupported(f"Q has rank {q.rank}; Attention takes 3-D or 4-D inputs")
    batch, heads, q_len, head = b.shape_of(q4)
    kv_heads = b.shape_of(k4)[1]
    past_len = int(past_key.shape[2]) if past_key is not None else 0
    k4 = _present(b, past_key, k4, present_key_out, "key")
    v4 = _present(b, past_value, v4, present_value_out, "value")
    kv_len, v_head = b.shape_of(k4)[2], b.shape_of(v4)[3]
    if heads != kv_heads:
        if heads % kv_heads:
            raise Unsupported(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
        order = b.ints(np.repeat(np.arange(kv_heads), heads // kv_heads), "head_of")  # each KV head serves a group
        k4 = _emit(b, "GATHER", [k4, order], [batch, heads, kv_len, head], "grouped_key", axis=1)
        v4 = _emit(b, "GATHER", [v4, order], [batch, heads, kv_len, v_head], "grouped_value", axis=1)
    root = np.float32(np.sqrt(1 / np.sqrt(head) if scale is None else scale))
    factor = b.const(np.full([1, 1, 1, 1], root, np.float32), hint="sqrt_scale")
    qs = _emit(b, "MUL", [q4, factor], [batch, heads, q_len, head], "scaled_q")
    ks = _emit(b, "MUL", [k4, factor], b.shape_of(k4), "scaled_k")
    scores_shape = [batch, heads, q_len, kv_len]
    qk = _emit(b, "BATCH_MATMUL", [qs, ks], scores_shape, "qk", adjY=True)
    if softcap > 0:
        cap = _scalar(b, softcap, "softcap", 4)
        capped = _emit(b, "DIV", [qk, cap], scores_shape, "qk_over_cap")
        capped = _emit(b, "TANH", [capped], scores_shape, "qk_tanh")
        qk = _emit(b, "MUL", [capped, cap], scores_shape, "qk_capped")
    if qk_out is not None and mode in (0, 1):
        b.emit("RESHAPE", [qk, b.ints(scores_shape)], [b.out(qk_out)])
    bias, all_masked = _bias(b, attn_mask, nonpad, is_causal, past_len, q_len, kv_len, left_window, right_window)
    logits = qk if bias is None else _emit(b, "ADD", [qk, bias], scores_shape, "qk_biased")
    if qk_out is not None and mode == 2:
        b.emit("RESHAPE", [logits, b.ints(scores_shape)], [b.out(qk_out)])
    probs = _emit(b, "SOFTMAX", [logits], scores_shape, "probs", beta=1.0)
    if all_masked is not None:  # rows with no attendable key are zero (TFLite's softmax makes them NaN)
        probs = _emit(b, "SELECT_V2", [all_masked, b.const(np.zeros([1, 1, 1, 1], np.float32), hint="zero"), probs],
                      scores_shape, "probs_guarded")
    if qk_out is not None and mode == 3:
        b.emit("RESHAPE", [probs, b.ints(scores_shape)], [b.out(qk_out)])
    if q.rank == 4:
        b.emit("BATCH_MATMUL", [probs, v4], [b.out(y)])
        return
    context = _emit(b, "BATCH_MATMUL", [probs, v4], [batch, heads, q_len, v_head], "context")
    merged = _emit(b, "TRANSPOSE", [context, b.ints([0, 2, 1, 3], "perm")], [batch, q_len, heads, v_head], "merged")
    b.emit("RESHAPE", [merged, b.ints([batch, q_len, heads * v_head])], [b.out(y)])


def _split_heads(b, x, heads: int, name: str) -> str:
    """[batch, seq, heads * size] -> [batch, heads, seq, size]."""
    batch, seq, hidden = (int(d) for d in x.shape)
    if hidden % heads:
        raise Unsupported(f"the hidden size {hidden} of {name.upper()} is not a multiple of its {heads} heads")
    split = _emit(b, "RESHAPE", [b.t(x), b.ints([batch, seq, heads, hidden // heads])],
                  [batch, seq, heads, hidden // heads], f"{name}_heads")
    return _emit(b, "TRANSPOSE", [split, b.ints([0, 2, 1, 3], "perm")], [batch, heads, seq, hidden // heads],
                 f"{name}_by_head")


def _present(b, past, current: str, out, name: str) -> str:
    """past ++ current along the sequence axis, written to the present output when the graph asks for it."""
    if past is None:
        if out is not None:
            b.emit("RESHAPE", [current, b.ints(b.shape_of(current))], [b.out(out)])
        return current
    shape = b.shape_of(current)
    shape[2] += int(past.shape[2])
    dest = b.out(out) if out is not None else b.temp(shape, hint=f"present_{name}")
    b.emit("CONCATENATION", [b.t(past), current], [dest], axis=2)
    return dest


def _bias(b, attn_mask, nonpad, is_causal, past_len, q_len, kv_len, left_window, right_window):
    """(the additive bias or None, a bool tensor marking the query rows every key is masked from, or None).

    The positional part (causal, windows) is a constant [q, kv] of 0 / -inf, offset by the past length; a constant
    mask folds into it; a computed one is turned into 0 / -inf at run time."""
    rows, cols = np.arange(q_len)[:, None] + past_len, np.arange(kv_len)[None]
    allowed = np.ones((q_len, kv_len), bool)
    if is_causal:
        allowed &= cols <= rows
    if left_window >= 0:
        allowed &= rows - cols <= left_window
    if right_window >= 0:
        allowed &= cols - rows <= right_window
    positional = np.where(allowed, np.float32(0), NEG_INF).astype(np.float32)
    mask_const = None
    if attn_mask is not None and attn_mask.is_const:
        mask_const = _mask_bias(np.asarray(attn_mask.const), kv_len)
    if attn_mask is None or mask_const is not None:
        if nonpad is None:
            total = positional if mask_const is None else (positional + mask_const).astype(np.float32)
            if not np.any(np.isneginf(total)) and mask_const is None:
                return None, None
            masked_rows = np.isneginf(np.max(total, axis=-1, keepdims=True))
            guard = b.const(masked_rows, hint="all_masked") if masked_rows.any() else None
            return b.const(total, hint="bias"), guard
    parts = []
    if attn_mask is not None and mask_const is None:
        parts.append(_runtime_mask_bias(b, attn_mask, kv_len))
    elif mask_const is not None:
        parts.append((b.const(mask_const, hint="mask_bias"), list(mask_const.shape)))
    if nonpad is not None:
        lengths = _lengths(b, nonpad)
        parts.append(_padding_bias(b, lengths, kv_len))
        if is_causal or left_window >= 0 or right_window >= 0:
            parts.append(_frontier_bias(b, lengths, is_causal, q_len, kv_len, left_window, right_window))
    elif np.any(~allowed):
        parts.append((b.const(positional, hint="positional_bias"), [q_len, kv_len]))
    bias, shape = parts[0]
    for other, other_shape in parts[1:]:
        shape = list(np.broadcast_shapes(tuple(shape), tuple(other_shape)))
        bias = _emit(b, "ADD", [bias, other], shape, "bias")
    shape = list(np.broadcast_shapes(tuple(shape), (q_len, kv_len)))
    if len(shape) < 4:
        shape = [1] * (4 - len(shape)) + shape
        bias = _emit(b, "RESHAPE", [bias, b.ints(shape)], shape, "bias4") if b.shape_of(bias) != shape else bias
    row_max = _emit(b, "REDUCE_MAX", [bias, b.ints([3], "last")], shape[:3] + [1], "bias_row_max", keepDims=True)
    guard = _emit(b, "EQUAL", [row_max, b.const(np.full([1, 1, 1, 1], NEG_INF), hint="neg_inf")], shape[:3] + [1],
                  "all_masked", dtype=np.bool_)
    return bias, guard


def _mask_bias(mask: np.ndarray, kv_len: int) -> np.ndarray:
    """A constant attn_mask as 0 / -inf (bool: True attends) or as given (float), padded with -inf to kv_len."""
    bias = np.where(mask, np.float32(0), NEG_INF) if mask.dtype == np.bool_ else mask.astype(np.float32)
    pad = kv_len - bias.shape[-1]
    if pad > 0:
        bias = np.concatenate([bias, np.full(bias.shape[:-1] + (pad,), NEG_INF, np.float32)], axis=-1)
    return bias.astype(np.float32)


def _runtime_mask_bias(b, mask, kv_len: int):
    shape = [int(d) for d in mask.shape]
    if mask.dtype == np.bool_:
        bias = _emit(b, "SELECT_V2", [b.t(mask), b.const(np.zeros([1] * len(shape), np.float32), hint="zero"),
                                      b.const(np.full([1] * len(shape), NEG_INF), hint="neg_inf")], shape, "mask_bias")
    elif mask.dtype == np.float32:
        bias = b.t(mask)
    else:
        raise Unsupported(f"attn_mask is {mask.dtype}; a bool or float32 mask is supported")
    pad = kv_len - shape[-1]
    if pad > 0:
        filler = b.const(np.full(shape[:-1] + [pad], NEG_INF), hint="mask_padding")
        shape = shape[:-1] + [kv_len]
        bias = _emit(b, "CONCATENATION", [bias, filler], shape, "mask_padded", axis=len(shape) - 1)
    return bias, shape


def _lengths(b, nonpad) -> str:
    """nonpad_kv_seqlen as float32 [batch, 1, 1, 1] (lengths are small integers: exact in float32)."""
    batch = int(nonpad.shape[0])
    lengths = _emit(b, "CAST", [b.t(nonpad)], [batch], "lengths")
    return _emit(b, "RESHAPE", [lengths, b.ints([batch, 1, 1, 1])], [batch, 1, 1, 1], "lengths4")


def _padding_bias(b, lengths: str, kv_len: int):
    """-inf on the keys at or after each batch's nonpad_kv_seqlen: [batch, 1, 1, kv]."""
    batch = b.shape_of(lengths)[0]
    padding = _emit(b, "LESS_EQUAL", [lengths, b.const(np.arange(kv_len, dtype=np.float32).reshape(1, 1, 1, -1),
                                                        hint="key_index")], [batch, 1, 1, kv_len], "padding",
                    dtype=np.bool_)
    bias = _emit(b, "SELECT_V2", [padding, b.const(np.full([1, 1, 1, 1], NEG_INF), hint="neg_inf"),
                                  b.const(np.zeros([1, 1, 1, 1], np.float32), hint="zero")], [batch, 1, 1, kv_len],
                 "padding_bias")
    return bias, [batch, 1, 1, kv_len]


def _frontier_bias(b, lengths: str, is_causal, q_len: int, kv_len: int, left_window: int, right_window: int):
    """The causal / window bias of an external cache: query i sits at nonpad_kv_seqlen[b] - q_len + i, so with
    d = that position - key j, causal allows d >= 0, the windows -right <= d <= left: [batch, 1, q, kv]."""
    batch = b.shape_of(lengths)[0]
    shape = [batch, 1, q_len, kv_len]
    offsets = (np.arange(q_len)[:, None] - np.arange(kv_len)[None] - q_len).astype(np.float32)[None, None]
    distance = _emit(b, "ADD", [lengths, b.const(offsets, hint="offsets")], shape, "distance")
    tests = []
    if is_causal:
        tests.append(("GREATER_EQUAL", 0))
    if left_window >= 0:
        tests.append(("LESS_EQUAL", left_window))
    if right_window >= 0:
        tests.append(("GREATER_EQUAL", -right_window))
    allowed = None
    for code, bound in tests:
        ok = _emit(b, code, [distance, _scalar(b, bound, "bound", 4)], shape, "within", dtype=np.bool_)
        allowed = ok if allowed is None else _emit(b, "LOGICAL_AND", [allowed, ok], shape, "allowed", dtype=np.bool_)
    bias = _emit(b, "SELECT_V2", [allowed, b.const(np.zeros([1, 1, 1, 1], np.float32), hint="zero"),
                                  b.const(np.full([1, 1, 1, 1], NEG_INF), hint="neg_inf")], shape, "frontier_bias")
    return bias, shape


# --- TensorScatter --------------------------------------------------------------------------------------------------

@lowering("TensorScatter", since=24, emits=("CAST", "RESHAPE", "SUB", "FLOOR_MOD", "MAXIMUM", "MINIMUM",
                                            "GREATER_EQUAL", "LESS", "LOGICAL_AND", "GATHER", "SELECT_V2"),
          dynamic_batch=False)
def tensor_scatter(b, past, update, write_indices=None, *, axis=-2, mode="linear"):
    """present[b, .., p, ..] = update[b, .., p - w[b], ..] where 0 <= p - w[b] < seq (mod max_seq when circular),
    else past: GATHER (batch_dims=1) of update along the sequence axis at the clamped offsets, then SELECT_V2."""
    if mode not in ("linear", "circular"):
        raise Unsupported(f"mode={mode!r} is not an ONNX value")
    rank = past.rank
    axis %= rank
    if axis == 0:
        raise Unsupported("axis=0 is the batch axis; the sequence axis must follow it")
    batch, max_len, seq = int(past.shape[0]), int(past.shape[axis]), int(update.shape[axis])
    positions = np.arange(max_len, dtype=np.int32)[None]  # [1, max_len]
    if write_indices is None or write_indices.is_const:
        starts = np.zeros(batch, np.int64) if write_indices is None else np.asarray(write_indices.const)
        offsets = positions - starts.astype(np.int32)[:, None]
        if mode == "circular":
            offsets %= max_len
        valid = b.const((offsets >= 0) & (offsets < seq), hint="written")
        index = b.const(np.clip(offsets, 0, seq - 1).astype(np.int32), hint="source")
    else:
        starts = b.t(write_indices)
        if b.g.tensors[starts].dtype != np.int32:
            starts = _emit(b, "CAST", [starts], [batch], "starts", dtype=np.int32)
        starts = _emit(b, "RESHAPE", [starts, b.ints([batch, 1])], [batch, 1], "starts2", dtype=np.int32)
        offsets = _emit(b, "SUB", [b.const(positions, hint="positions"), starts], [batch, max_len], "offsets",
                        dtype=np.int32)
        if mode == "circular":
            offsets = _emit(b, "FLOOR_MOD", [offsets, b.ints([[max_len]], "max_len")], [batch, max_len], "wrapped",
                            dtype=np.int32)
        grid = [batch, max_len]
        low = _emit(b, "GREATER_EQUAL", [offsets, b.ints([[0]], "zero")], grid, "from_start", dtype=np.bool_)
        high = _emit(b, "LESS", [offsets, b.ints([[seq]], "seq")], grid, "before_end", dtype=np.bool_)
        valid = _emit(b, "LOGICAL_AND", [low, high], grid, "written", dtype=np.bool_)
        index = _emit(b, "MAXIMUM", [offsets, b.ints([[0]], "zero")], grid, "clamped_low", dtype=np.int32)
        index = _emit(b, "MINIMUM", [index, b.ints([[seq - 1]], "last")], grid, "source", dtype=np.int32)
    shape = [int(d) for d in past.shape]
    moved = _emit(b, "GATHER", [b.t(update), index], shape, "moved", axis=axis, batchDims=1)
    mask_shape = [batch] + [1] * (rank - 1)
    mask_shape[axis] = max_len
    mask = _emit(b, "RESHAPE", [valid, b.ints(mask_shape)], mask_shape, "written_at", dtype=np.bool_)
    b.emit("SELECT_V2", [mask, moved, b.t(past)], [b.out(b.outputs[0])])

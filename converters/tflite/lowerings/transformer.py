"""The transformer ops of recent opsets, composed from builtins on static shapes: SwiGLU (LOGISTIC, MUL),
RotaryEmbedding (GATHER of the caches, SLICE / STRIDED_SLICE halves, CONCATENATION) and Attention (BATCH_MATMUL,
a constant or computed additive bias, SOFTMAX, and the spec's zero rows where every key is masked).

The numerics follow ONNX's reference implementation step by step (Attention scales Q and K each by sqrt(scale),
softcap divides, the bias is added after softcap), so results agree to float rounding."""
from __future__ import annotations

import math

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

FLOAT, DOUBLE = 1, 11  # TensorProto dtypes


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

"""Compiler-internal ops that fusion passes create from multi-node ONNX patterns: ChannelShuffle
(passes/channel_shuffle.py) and AdaptiveAveragePool (passes/adaptive_pool.py)."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.registry import INTERNAL, lowering
from edgekit.converters.tflite.tfl import physical

#: how ChannelShuffle moves channels: "transpose" (RESHAPE + TRANSPOSE of the two channel factors + RESHAPE)
#: or "gather" (one GATHER with constant indices). XNNPACK runs TRANSPOSE; GATHER falls back to the builtin
#: kernel and splits the delegated graph; benchmarks/bench_classic_cnns.py measures both on ShuffleNetV2.
SHUFFLE_WITH = "transpose"


@lowering("ChannelShuffle", domain=INTERNAL, emits=("RESHAPE", "TRANSPOSE", "GATHER"), layout="any", dtypes=("float32", "int8"))
def channel_shuffle(b, x, *, group=1):
    """out[:, k*g + i] = x[:, i*(C/g) + k], in whatever layout x has."""
    y = b.outputs[0]
    axis = physical(1, x)
    shape = list(x.phys_shape)
    c = shape[axis]
    if SHUFFLE_WITH == "gather":
        order = np.arange(c).reshape(group, c // group).T.ravel()
        b.emit("GATHER", [b.t(x), b.ints(order, "shuffle")], [b.out(y)], axis=axis)
        return
    split = shape[:axis] + [group, c // group] + shape[axis + 1:]
    swapped = shape[:axis] + [c // group, group] + shape[axis + 1:]
    perm = list(range(len(split)))
    perm[axis], perm[axis + 1] = axis + 1, axis
    grouped, moved = b.like(x, split, hint="grouped"), b.like(x, swapped, hint="swapped")
    b.emit("RESHAPE", [b.t(x), b.ints(split)], [grouped])
    b.emit("TRANSPOSE", [grouped, b.ints(perm, "perm")], [moved])
    b.emit("RESHAPE", [moved, b.ints(shape)], [b.out(y)])


@lowering("AdaptiveAveragePool", domain=INTERNAL, emits=("RESHAPE", "BATCH_MATMUL"), layout="nhwc")
def adaptive_average_pool(b, x, windows):
    """NHWC [N,H,W,C] -> [N,H*W,C]; windows [OH*OW, H*W] @ that -> [N,OH*OW,C] -> [N,OH,OW,C]."""
    y = b.outputs[0]
    n, h, w, c = x.phys_shape
    _, oh, ow, _ = y.phys_shape
    flat = b.temp([n, h * w, c], hint="positions")
    pooled = b.temp([n, oh * ow, c], hint="pooled")
    b.emit("RESHAPE", [b.t(x), b.ints([-1, h * w, c])], [flat])
    b.emit("BATCH_MATMUL", [b.const(windows.const[None], np.float32, "windows"), flat], [pooled])
    b.emit("RESHAPE", [pooled, b.ints([-1, oh, ow, c])], [b.out(y)])

"""Transformer building blocks without a one-op ONNX→TFLite match: LayerNormalization (MEAN / RSQRT
composition) and Gelu (the GELU builtin). Both are also what the layernorm and gelu fusion passes
produce from their decomposed forms, so they are registered for every opset."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering


@lowering("LayerNormalization", since=1, emits=("MEAN", "SUB", "MUL", "ADD", "RSQRT"))
def layer_normalization(b, x, scale, bias=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """y = (x - mean) * rsqrt(mean((x - mean)^2) + epsilon) * scale + bias over the axes from `axis` on."""
    y = b.outputs[0]
    axis %= x.rank
    axes = b.ints(list(range(axis, x.rank)), "axes")
    stats_shape = list(x.shape[:axis]) + [1] * (x.rank - axis)
    mean_out = b.outputs[1] if len(b.outputs) > 1 else None
    inv_out = b.outputs[2] if len(b.outputs) > 2 else None
    mean = b.out(mean_out) if mean_out is not None else b.temp(stats_shape, hint="mean")
    b.emit("MEAN", [b.t(x), axes], [mean], keepDims=True)
    centred, squared = b.temp(x.shape, hint="centred"), b.temp(x.shape, hint="squared")
    b.emit("SUB", [b.t(x), mean], [centred])
    b.emit("MUL", [centred, centred], [squared])
    var, shifted = b.temp(stats_shape, hint="variance"), b.temp(stats_shape, hint="variance_eps")
    b.emit("MEAN", [squared, axes], [var], keepDims=True)
    b.emit("ADD", [var, b.const(np.full([1] * x.rank, epsilon, np.float32), hint="epsilon")], [shifted])
    inv = b.out(inv_out) if inv_out is not None else b.temp(stats_shape, hint="inv_std")
    b.emit("RSQRT", [shifted], [inv])
    gamma = scale.const if scale.is_const else None
    beta = bias.const if bias is not None and bias.is_const else None
    steps = [("MUL", inv)]
    if gamma is None or np.any(gamma != 1):
        steps.append(("MUL", b.operand(scale, y)))
    if bias is not None and (beta is None or np.any(beta != 0)):
        steps.append(("ADD", b.operand(bias, y)))
    src = centred
    for i, (code, operand) in enumerate(steps):
        dest = b.out(y) if i == len(steps) - 1 else b.temp(x.shape, hint=f"affine{i}")
        b.emit(code, [src, operand], [dest])
        src = dest


@lowering("Gelu", since=1, emits=("GELU",), layout="any")
def gelu(b, x, *, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"approximate={approximate!r} is not an ONNX value")
    b.emit("GELU", [b.t(x)], [b.out(b.outputs[0])], approximate=approximate == "tanh")

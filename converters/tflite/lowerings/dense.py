"""Dense layers: Gemm and MatMul → FULLY_CONNECTED with constant weights (XNNPACK packs them),
BATCH_MATMUL when both operands are computed."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.quantization import bias_const, weight_const
from edgekit.converters.tflite.registry import INTERNAL, Unsupported, lowering

#: int8: int8 activations, int8 per-channel weights, int32 bias; float32 with int8 weights: hybrid kernels
DENSE_DTYPES = ("float32", "int8")


@lowering("Gemm", since=7, emits=("FULLY_CONNECTED", "BATCH_MATMUL", "ADD", "MUL"), dtypes=DENSE_DTYPES)
def gemm(b, a, bm, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    if transA:
        raise Unsupported("transA=1 is not supported", hint="Export the model with the transpose folded into the weights.")
    y = b.outputs[0]
    if (a.quant is not None or bm.quant is not None) and (alpha != 1.0 or beta != 1.0):
        raise Unsupported(f"alpha={alpha}, beta={beta} on quantized operands (only 1.0 is supported)")
    if bm.is_const:
        weight = (bm.const if transB else bm.const.T)
        if bm.quant is None and alpha != 1.0:  # alpha 1 (every nn.Linear) keeps the array: no copy of the weights
            weight = weight * np.float32(alpha)
        bias = _fc_bias(c, beta, weight.shape[0])
        if bias is not None and c.quant is not None:
            bias = c.const.reshape(-1) if c.const.size == weight.shape[0] else None
        if a.quant is not None and c is not None and bias is None:
            raise Unsupported("a bias C that is computed or broadcast over rows, on int8 operands")
        fc_out = b.out(y) if bias is not None or c is None else b.temp(y.shape, hint="fc")
        inputs = [b.t(a), weight_const(b, bm, weight, 0), bias_const(b, c, bias) if bias is not None else None]
        b.emit("FULLY_CONNECTED", inputs, [fc_out], **_hybrid(a, bm))
        if bias is None and c is not None:
            _add_scaled(b, fc_out, c, beta, y)
        return
    prod = b.temp(y.shape, hint="matmul") if (alpha != 1.0 or c is not None) else b.out(y)
    b.emit("BATCH_MATMUL", [b.t(a), b.t(bm)], [prod], adjY=bool(transB))
    if alpha != 1.0:
        scaled = b.temp(y.shape, hint="scaled") if c is not None else b.out(y)
        b.emit("MUL", [prod, b.const(np.full([1, 1], alpha, np.float32), hint="alpha")], [scaled])
        prod = scaled
    if c is not None:
        _add_scaled(b, prod, c, beta, y)


def _fc_bias(c, beta, units: int):
    """A bias vector FULLY_CONNECTED can take, or None if C is computed or broadcasts over rows."""
    if c is None or not c.is_const:
        return None
    data = c.const
    if data.size == units and (data.ndim == 1 or data.shape[0] == 1):
        return data.reshape(units) * np.float32(beta)
    if data.size == 1:
        return np.full(units, data.reshape(()) * beta, np.float32)
    return None


def _add_scaled(b, src, c, beta, y) -> None:
    if c.is_const:
        operand = b.const((c.const * np.float32(beta)).reshape((1,) * (2 - c.const.ndim) + c.const.shape), np.float32, "C")
    elif beta == 1.0:
        operand = b.t(c)
    else:
        raise Unsupported("beta != 1 with a computed C is not supported")
    b.emit("ADD", [src, operand], [b.out(y)])


def _hybrid(a, bm) -> dict:
    """Float activations with int8 weights: TFLite's hybrid kernel, inputs quantized per batch asymmetrically."""
    return {"asymmetricQuantizeInputs": True} if a.quant is None and bm.quant is not None else {}


@lowering("MatMul", emits=("FULLY_CONNECTED", "BATCH_MATMUL"), dtypes=DENSE_DTYPES)
def matmul(b, a, bm):
    y = b.outputs[0]
    if a.rank < 2 or bm.rank < 2:
        raise Unsupported("1-D MatMul operands are not supported", hint="Reshape them to 2-D in the model.")
    if bm.is_const and bm.rank == 2:
        b.emit("FULLY_CONNECTED", [b.t(a), weight_const(b, bm, bm.const.T, 0), None], [b.out(y)],
               keepNumDims=a.rank > 2, **_hybrid(a, bm))
        return
    b.emit("BATCH_MATMUL", [b.t(a), b.t(bm)], [b.out(y)])


@lowering("BatchMatMul", domain=INTERNAL, emits=("BATCH_MATMUL",))
def batch_matmul(b, a, bm, *, adj_x=0, adj_y=0):
    """MatMul whose operands the matmul_adjoint pass left untransposed: BATCH_MATMUL reads them as adjoints."""
    b.emit("BATCH_MATMUL", [b.t(a), b.t(bm)], [b.out(b.outputs[0])], adjX=bool(adj_x), adjY=bool(adj_y))

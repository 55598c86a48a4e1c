"""Pooling on NHWC data: MaxPool, AveragePool, GlobalAveragePool (MEAN), GlobalMaxPool (REDUCE_MAX)."""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import (VALID, nhwc_paddings, onnx_pads, padded_nhwc, require_rank,
                                                         spatial, tflite_padding)
from edgekit.converters.tflite.quantization import INT8
from edgekit.converters.tflite.registry import Unsupported, lowering

LOWEST = float(np.finfo(np.float32).min)
#: integer kernels: pooling keeps its input's parameters (the requantize pass matches the output to them)
POOL_DTYPES = ("float32", "int8")


def _pool(b, code, x, kernel_shape, strides, pads, auto_pad, dilations, pad_value, include_pad=False):
    """Pool with SAME/VALID when TFLite's rule matches ONNX, else an explicit PAD(V2) first."""
    require_rank(x, 4, "2-D pooling (4-D input)")
    if any(d != 1 for d in dilations or [1, 1]):
        raise Unsupported(f"dilations={dilations} (TFLite pooling has no dilation)")
    y = b.outputs[0]
    strides = strides or [1, 1]
    ones = [1, 1]
    begins, ends = onnx_pads(spatial(x), kernel_shape, strides, ones, pads, auto_pad, spatial(y))
    padding = tflite_padding(spatial(x), kernel_shape, strides, ones, begins, ends, spatial(y))
    if include_pad and any(begins + ends):
        padding = None  # TFLite's SAME averages over the valid cells only
    src = b.t(x)
    if padding is None:
        if pad_value is None:
            raise Unsupported(f"pads={pads} that TFLite's SAME rule does not reproduce, with count_include_pad=0",
                              hint="Use symmetric 'same' padding, or count_include_pad=1.")
        padded = b.like(x, padded_nhwc(x, begins, ends), hint="padded")
        paddings = b.const(nhwc_paddings(begins, ends), hint="paddings")
        if pad_value == 0.0:
            b.emit("PAD", [src, paddings], [padded])
        elif x.quant is not None:  # the lowest int8 value stands for -inf
            b.emit("PADV2", [src, paddings, b.const(np.asarray(INT8[0], np.int8), hint="pad_value", quant=x.quant)],
                   [padded])
        else:
            b.emit("PADV2", [src, paddings, b.const(np.asarray(pad_value, np.float32), hint="pad_value")], [padded])
        src, padding = padded, VALID
    b.emit(code, [src], [b.out(y)], padding=padding, strideH=strides[0], strideW=strides[1],
           filterHeight=kernel_shape[0], filterWidth=kernel_shape[1])


@lowering("MaxPool", since=1, emits=("MAX_POOL_2D", "PADV2"), layout="nhwc", dtypes=POOL_DTYPES)  # opset 1: no ceil_mode/dilations yet
@lowering("MaxPool", since=8, emits=("MAX_POOL_2D", "PADV2"), layout="nhwc", dtypes=POOL_DTYPES)
def max_pool(b, x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
             storage_order=0, strides=None):
    if len(b.outputs) > 1 and b.outputs[1] is not None:
        raise Unsupported("its Indices output is used; TFLite pooling has none")
    if storage_order:
        raise Unsupported("storage_order=1")
    _pool(b, "MAX_POOL_2D", x, kernel_shape, strides, pads, auto_pad, dilations, LOWEST)


@lowering("AveragePool", since=7, emits=("AVERAGE_POOL_2D", "PAD"), layout="nhwc", dtypes=POOL_DTYPES)
def average_pool(b, x, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                 pads=None, strides=None):
    if ceil_mode and count_include_pad:
        raise Unsupported("ceil_mode=1 with count_include_pad=1")
    has_pads = any(pads or []) or auto_pad in ("SAME_UPPER", "SAME_LOWER")
    _pool(b, "AVERAGE_POOL_2D", x, kernel_shape, strides, pads, auto_pad, dilations,
          0.0 if count_include_pad or not has_pads and not ceil_mode else None, include_pad=bool(count_include_pad))


def _global(b, code, x):
    require_rank(x, 4, "2-D global pooling (4-D input)")
    b.emit(code, [b.t(x), b.ints([1, 2], "axes")], [b.out(b.outputs[0])], keepDims=True)


@lowering("GlobalAveragePool", emits=("MEAN",), layout="nhwc", dtypes=POOL_DTYPES)
def global_average_pool(b, x):
    _global(b, "MEAN", x)


@lowering("GlobalMaxPool", emits=("REDUCE_MAX",), layout="nhwc", dtypes=POOL_DTYPES)
def global_max_pool(b, x):
    _global(b, "REDUCE_MAX", x)

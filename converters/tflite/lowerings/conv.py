"""Convolutions: Conv (regular, depthwise, grouped) and ConvTranspose, on NHWC data with weights
permuted at compile time."""
from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.converters.tflite.lowerings._common import (VALID, const_of, nhwc_paddings, onnx_pads, padded_nhwc,
                                                         require_rank, spatial, tflite_padding)
from edgekit.converters.tflite.quantization import bias_const, channels, weight_const
from edgekit.converters.tflite.registry import Unsupported, lowering

#: int8: int8 activations with int8 per-channel weights and int32 biases (the int8_weights pass prepares them);
#: float32 with int8 weights runs TFLite's hybrid (dynamic-range) kernels
CONV_DTYPES = ("float32", "int8")


@lowering("Conv", emits=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "SPLIT", "CONCATENATION"), layout="nhwc",
          dtypes=CONV_DTYPES)
def conv(b, x, w, bias=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
         strides=None):
    require_rank(x, 4, "2-D convolution (4-D input)")
    weight = const_of(w, "weight")
    bias_value = bias
    bias = const_of(bias, "bias", np.zeros(weight.shape[0], np.float32))
    y = b.outputs[0]
    kernel, strides, dilations = list(weight.shape[2:]), strides or [1, 1], dilations or [1, 1]
    begins, ends = onnx_pads(spatial(x), kernel, strides, dilations, pads, auto_pad, spatial(y))
    padding = tflite_padding(spatial(x), kernel, strides, dilations, begins, ends, spatial(y))
    src = b.t(x)
    if padding is None:
        src, padding = _pad(b, x, src, begins, ends), VALID
    options = dict(padding=padding, strideH=strides[0], strideW=strides[1],
                   dilationHFactor=dilations[0], dilationWFactor=dilations[1])
    cin = x.shape[1]
    if group == 1:
        b.emit("CONV_2D", [src, weight_const(b, w, weight.transpose(0, 2, 3, 1), 0),
                           bias_const(b, bias_value, bias)], [b.out(y)], **options)
    elif group == cin and weight.shape[1] == 1:
        b.emit("DEPTHWISE_CONV_2D", [src, weight_const(b, w, weight.transpose(1, 2, 3, 0), 3),
                                     bias_const(b, bias_value, bias)], [b.out(y)],
               depthMultiplier=weight.shape[0] // cin, **options)
    else:
        _grouped(b, src, w, bias_value, weight, bias, group, y, options)


def _pad(b, x, src, begins, ends, value=None) -> str:
    padded = b.like(x, padded_nhwc(x, begins, ends), hint="padded")
    b.emit("PAD", [src, b.const(nhwc_paddings(begins, ends), hint="paddings")], [padded])
    return padded


def _grouped(b, src, w, bias_value, weight, bias, group, y, options) -> None:
    """SPLIT the channels, one CONV_2D per group, CONCATENATION of the results."""
    n, h, width, c = b.shape_of(src)
    tensor = b.g.tensors[src]
    parts = [b.temp([n, h, width, c // group], tensor.dtype, f"group{i}", tensor.quant) for i in range(group)]
    b.emit("SPLIT", [b.ints(3, "axis"), src], parts, numSplits=group)
    out_shape = list(y.phys_shape)
    per = weight.shape[0] // group
    outs = []
    for i, part in enumerate(parts):
        out = b.like(y, out_shape[:3] + [per], hint=f"group{i}_out")
        w_i = weight[i * per:(i + 1) * per].transpose(0, 2, 3, 1)
        w_slice = dataclasses.replace(w, quant=channels(w.quant, i * per, (i + 1) * per))
        b_slice = None if bias_value is None else dataclasses.replace(
            bias_value, quant=channels(bias_value.quant, i * per, (i + 1) * per))
        b.emit("CONV_2D", [part, weight_const(b, w_slice, w_i, 0, f"weight{i}"),
                           bias_const(b, b_slice, bias[i * per:(i + 1) * per], f"bias{i}")], [out], **options)
        outs.append(out)
    b.emit("CONCATENATION", outs, [b.out(y)], axis=3)


@lowering("ConvTranspose", emits=("TRANSPOSE_CONV", "SLICE"), layout="nhwc", dynamic_batch=False, dtypes=CONV_DTYPES)
def conv_transpose(b, x, w, bias=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                   output_padding=None, output_shape=None, pads=None, strides=None):
    require_rank(x, 4, "2-D transposed convolution (4-D input)")
    weight = const_of(w, "weight")
    if group != 1:
        raise Unsupported(f"group={group} (TFLite TRANSPOSE_CONV has no groups)")
    if any(d != 1 for d in dilations or [1, 1]):
        raise Unsupported(f"dilations={dilations} (TFLite TRANSPOSE_CONV has no dilation)")
    cout = weight.shape[1]
    bias_value = bias
    bias = const_of(bias, "bias", np.zeros(cout, np.float32))
    y = b.outputs[0]
    strides = strides or [1, 1]
    kernel, in_hw, out_hw = list(weight.shape[2:]), spatial(x), spatial(y)
    begins = _transpose_begins(in_hw, kernel, strides, pads, auto_pad, out_hw)
    w_t = weight_const(b, w, weight.transpose(1, 2, 3, 0), 0)
    b_t = bias_const(b, bias_value, bias)
    options = dict(strideH=strides[0], strideW=strides[1])
    if _same_matches(in_hw, kernel, strides, begins, out_hw):
        b.emit("TRANSPOSE_CONV", [b.ints(y.phys_shape, "output_shape"), w_t, b.t(x), b_t], [b.out(y)],
               padding=0, **options)
        return
    full = [(n - 1) * s + k for n, s, k in zip(in_hw, strides, kernel)]
    if any(bg + o > f for bg, o, f in zip(begins, out_hw, full)):
        raise Unsupported(f"output_padding={output_padding} extends past the transposed convolution's full output")
    n, c = y.phys_shape[0], y.phys_shape[3]
    whole = b.like(y, [n, full[0], full[1], c], hint="full")
    b.emit("TRANSPOSE_CONV", [b.ints([n, full[0], full[1], c], "output_shape"), w_t, b.t(x), b_t], [whole],
           padding=VALID, **options)
    b.emit("SLICE", [whole, b.ints([0, begins[0], begins[1], 0], "begin"), b.ints([n, out_hw[0], out_hw[1], c], "size")],
           [b.out(y)])


def _transpose_begins(in_hw, kernel, strides, pads, auto_pad, out_hw) -> list:
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [(n - 1) * s + k - o for n, s, k, o in zip(in_hw, strides, kernel, out_hw)]
        return [t // 2 if auto_pad == "SAME_LOWER" else t - t // 2 for t in totals]
    return list(pads[:2]) if pads and auto_pad == "NOTSET" else [0, 0]


def _same_matches(in_hw, kernel, strides, begins, out_hw) -> bool:
    for n, k, s, bg, o in zip(in_hw, kernel, strides, begins, out_hw):
        total = max((n - 1) * s + k - o, 0)
        if o != n * s or bg != total // 2:
            return False
    return True

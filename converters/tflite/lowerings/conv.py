"""Convolutions: Conv (regular, depthwise, grouped; 3-D as CONV_3D) and ConvTranspose, on NHWC data with weights
permuted at compile time."""
from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.converters.tflite.lowerings._common import (SAME, VALID, const_of, nhwc_paddings, onnx_pads, padded_nhwc,
                                                         require_rank, spatial, tflite_padding)
from edgekit.converters.tflite.quantization import bias_const, channels, dequantize, weight_const
from edgekit.converters.tflite.registry import Unsupported, lowering

#: int8: int8 activations with int8 per-channel weights and int32 biases (the int8_weights pass prepares them);
#: float32 with int8 weights runs TFLite's hybrid (dynamic-range) kernels
CONV_DTYPES = ("float32", "int8")


@lowering("Conv", emits=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "SPLIT", "CONCATENATION", "CONV_3D", "TRANSPOSE"),
          layout="nhwc", dtypes=CONV_DTYPES)
def conv(b, x, w, bias=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
         strides=None):
    if x.shape is not None and x.rank == 5:
        return _conv3d(b, x, w, bias, auto_pad=auto_pad, dilations=dilations, group=group, pads=pads, strides=strides)
    require_rank(x, 4, "2-D or 3-D convolution (4-D or 5-D input)")
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


def _conv3d(b, x, w, bias, *, auto_pad, dilations, group, pads, strides) -> None:
    """TRANSPOSE to NDHWC, CONV_3D with a [D, H, W, in, out] filter, TRANSPOSE back to NCDHW.

    The layout pass keeps 5-D values in ONNX layout (only 4-D ones become NHWC), so the relayout happens here, around
    each convolution. LiteRT's CONV_3D is float32 only and has no groups (its filter's input channels must equal the
    input's); anything else is refused rather than approximated."""
    if group != 1:
        raise Unsupported(f"group={group} in a 3-D convolution: TFLite's CONV_3D has no grouped form",
                          hint="Use group=1 3-D convolutions, or (2+1)-D convolutions.")
    if x.dtype.name != "float32":
        raise Unsupported(f"a 3-D convolution on {x.dtype.name} data: TFLite's CONV_3D kernel takes float32 only",
                          hint="Keep 3-D convolutions in float.")
    # int8 weights on float data (a dynamic-range model, or an INT8 model's float island around the convolution):
    # their real values, as ONNX Runtime dequantizes them — CONV_3D has neither a hybrid nor an int8 kernel
    weight = _real(w, const_of(w, "weight"))
    bias = _real(bias, const_of(bias, "bias", np.zeros(weight.shape[0], np.float32)))
    y = b.outputs[0]
    in_dhw, out_dhw, kernel = [int(d) for d in x.shape[2:]], [int(d) for d in y.shape[2:]], list(weight.shape[2:])
    strides, dilations = list(strides or [1, 1, 1]), list(dilations or [1, 1, 1])
    begins, ends = onnx_pads(in_dhw, kernel, strides, dilations, pads, auto_pad, out_dhw)
    padding = tflite_padding(in_dhw, kernel, strides, dilations, begins, ends, out_dhw)
    n, c = x.shape[0], x.shape[1]
    src = b.temp([n, *in_dhw, c], x.dtype, "ndhwc")
    b.emit("TRANSPOSE", [b.t(x), b.ints([0, 2, 3, 4, 1], "to_ndhwc")], [src])
    if padding is None:
        padded = b.temp([n, *(i + p + q for i, p, q in zip(in_dhw, begins, ends)), c], x.dtype, "padded")
        b.emit("PAD", [src, b.const(np.asarray([[0, 0], *zip(begins, ends), [0, 0]], np.int32), hint="paddings")],
               [padded])
        src, padding = padded, VALID
    out = b.temp([n, *out_dhw, weight.shape[0]], x.dtype, "ndhwc_out")
    b.emit("CONV_3D", [src, b.const(weight.transpose(2, 3, 4, 1, 0), np.float32, "filter"),
                       b.const(bias, np.float32, "bias")], [out],
           padding=padding, strideD=strides[0], strideH=strides[1], strideW=strides[2],
           dilationDFactor=dilations[0], dilationHFactor=dilations[1], dilationWFactor=dilations[2])
    b.emit("TRANSPOSE", [out, b.ints([0, 4, 1, 2, 3], "to_ncdhw")], [b.out(y)])


def _real(value, data):
    """A constant's real values: dequantized when it carries quantization parameters."""
    return dequantize(data, value.quant).astype(np.float32) if value is not None and value.quant else data


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


@lowering("ConvTranspose", emits=("TRANSPOSE_CONV", "SLICE", "SPLIT", "CONCATENATION"), layout="nhwc",
          dynamic_batch=False, dtypes=CONV_DTYPES)
def conv_transpose(b, x, w, bias=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                   output_padding=None, output_shape=None, pads=None, strides=None):
    """TRANSPOSE_CONV computes the full transposed convolution cropped to `output_shape` from a begin its padding
    fixes (VALID: 0, SAME: TFLite's rule); positions past the full result hold the bias, as in ONNX. Other begins
    compute a longer output and SLICE it; dilation becomes a kernel with zeros between its taps."""
    require_rank(x, 4, "2-D transposed convolution (4-D input)")
    weight = const_of(w, "weight")
    dilations, strides = list(dilations or [1, 1]), list(strides or [1, 1])
    if any(d != 1 for d in dilations):
        if w.quant is not None:
            raise Unsupported(f"dilations={dilations} with int8 weights")
        weight = _dilated(weight, dilations)
    if group != 1 and w.quant is not None:
        raise Unsupported(f"group={group} with int8 weights (their per-channel parameters would need regrouping)")
    cout = weight.shape[1] * group
    bias_value = bias
    bias = const_of(bias, "bias", np.zeros(cout, np.float32))
    y = b.outputs[0]
    kernel, in_hw, out_hw = list(weight.shape[2:]), spatial(x), spatial(y)
    begins = _transpose_begins(in_hw, kernel, strides, pads, auto_pad, output_padding, output_shape, out_hw)
    if any(bg < 0 for bg in begins):
        raise Unsupported(f"an output starting {[-bg for bg in begins]} before the transposed convolution's first "
                          "position (a negative begin padding)")
    plan = _transpose_plan(in_hw, strides, kernel, begins, out_hw)
    if plan is None:
        raise Unsupported(f"an output of {out_hw} starting at {begins} in the full transposed convolution, which no "
                          "TRANSPOSE_CONV output size reaches (it must match the input size by TFLite's conv rule)")
    padding, computed, offsets = plan
    n, c = y.phys_shape[0], y.phys_shape[3]
    whole = b.out(y) if computed == out_hw and not any(offsets) else b.like(y, [n, *computed, c], hint="uncropped")
    options = dict(padding=padding, strideH=strides[0], strideW=strides[1])
    if group == 1:
        b.emit("TRANSPOSE_CONV", [b.ints([n, *computed, c], "output_shape"), weight_const(b, w, weight.transpose(1, 2, 3, 0), 0), b.t(x),
                                  bias_const(b, bias_value, bias)], [whole], **options)
    else:
        _grouped_transpose(b, x, weight, bias, group, whole, [n, *computed, c], options)
    if whole != b.out(y):
        b.emit("SLICE", [whole, b.ints([0, *offsets, 0], "begin"), b.ints([n, *out_hw, c], "size")], [b.out(y)])


def _grouped_transpose(b, x, weight, bias, group, whole, whole_shape, options) -> None:
    """SPLIT the input channels, one TRANSPOSE_CONV per group, CONCATENATION of their outputs (float weights)."""
    n, h, width, cin = x.phys_shape
    parts = [b.like(x, [n, h, width, cin // group], hint=f"group{i}") for i in range(group)]
    b.emit("SPLIT", [b.ints(3, "axis"), b.t(x)], parts, numSplits=group)
    per_in, per_out = cin // group, weight.shape[1]
    shape_i = b.ints([*whole_shape[:3], per_out], "group_output_shape")
    outs = []
    for i, part in enumerate(parts):
        w_i = weight[i * per_in:(i + 1) * per_in].transpose(1, 2, 3, 0)
        out = b.temp([*whole_shape[:3], per_out], hint=f"group{i}_out")
        b.emit("TRANSPOSE_CONV", [shape_i, b.const(w_i, np.float32, f"weight{i}"), part,
                                  b.const(bias[i * per_out:(i + 1) * per_out], np.float32, f"bias{i}")], [out],
               **options)
        outs.append(out)
    b.emit("CONCATENATION", outs, [whole], axis=3)


def _dilated(weight: np.ndarray, dilations) -> np.ndarray:
    """The kernel with dilation-1 zeros between its taps: the same transposed convolution without dilation."""
    kh, kw = weight.shape[2:]
    out = np.zeros((*weight.shape[:2], (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1), weight.dtype)
    out[:, :, ::dilations[0], ::dilations[1]] = weight
    return out


def _transpose_begins(in_hw, kernel, strides, pads, auto_pad, output_padding, output_shape, out_hw) -> list:
    """Where the ONNX output starts in the full transposed convolution (kernel already dilated)."""
    output_padding = list(output_padding or [0, 0])
    full = [(n - 1) * s + k + p for n, s, k, p in zip(in_hw, strides, kernel, output_padding)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [f - o for f, o in zip(full, out_hw)]
        if any(t < 0 for t in totals):
            raise Unsupported(f"auto_pad={auto_pad} with an output larger than the full transposed convolution")
        return [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    if auto_pad not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad={auto_pad!r} is not an ONNX value")
    if output_shape is not None and any(f > o for f, o in zip(full, out_hw)) and not any(pads or []):
        raise Unsupported(f"output_shape={list(output_shape)} smaller than the full transposed convolution {full}: "
                          "where it starts is not fixed (the spec splits the difference, the reference starts at 0)",
                          hint="Give explicit pads instead of output_shape.")
    return list(pads[:2]) if pads and auto_pad == "NOTSET" else [0, 0]


def _transpose_plan(in_hw, strides, kernel, begins, out_hw):
    """(padding, computed size, slice offsets) for TRANSPOSE_CONV, or None.

    TRANSPOSE_CONV refuses (and XNNPACK silently mis-sizes) an output size C whose forward convolution does not give
    the input size back: VALID needs (C - k) // s + 1 == n, SAME ceil(C / s) == n. Under VALID the output starts at
    the full result's position 0; under SAME at max(0, (n - 1) * s + k - C) // 2. Positions past the full result hold
    the bias, as ONNX's output_padding region does. The smallest C covering [begin, begin + out) is taken.
    """
    for padding in (SAME, VALID):
        sizes, offsets = [], []
        for n, s, k, bg, o in zip(in_hw, strides, kernel, begins, out_hw):
            low, high = ((n - 1) * s + 1, n * s) if padding == SAME else ((n - 1) * s + k, (n - 1) * s + k + s - 1)
            for size in range(max(low, 1), high + 1):
                start = max(0, (n - 1) * s + k - size) // 2 if padding == SAME else 0
                if start <= bg and bg + o <= start + size:
                    sizes.append(size)
                    offsets.append(bg - start)
                    break
        if len(sizes) == 2:
            return padding, sizes, offsets
    return None

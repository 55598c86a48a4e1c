"""QuantizeLinear → QUANTIZE (float → int8, or int8 → int8 requantization) and DequantizeLinear → DEQUANTIZE,
for what the QDQ folding pass leaves: the model's float inputs and outputs and the edges of float islands.
The parameters were read into the values' `quant` by that pass."""
from __future__ import annotations

from edgekit.converters.tflite.registry import Unsupported, lowering

QDQ_DTYPES = ("float32", "int8", "uint8")  # uint8: model outputs (passes.integer_dtypes)


def _quantize(b, x, axis, block_size=0, output_dtype=0):
    y = b.outputs[0]
    if block_size:
        raise Unsupported(f"block_size={block_size} (blocked quantization)")
    if y.quant is None or len(y.quant["scale"]) != 1:
        raise Unsupported("only per-tensor int8/uint8 quantization of activations with constant scale and zero "
                          "point is supported", hint="Quantize with `edgekit quantize` (per-tensor activations).")
    b.emit("QUANTIZE", [b.t(x)], [b.out(y)])


@lowering("QuantizeLinear", since=13, emits=("QUANTIZE",), dtypes=QDQ_DTYPES, layout="any")
def quantize_linear_13(b, x, y_scale, y_zero_point=None, *, axis=1):
    _quantize(b, x, axis)


@lowering("QuantizeLinear", since=19, emits=("QUANTIZE",), dtypes=QDQ_DTYPES, layout="any")
def quantize_linear_19(b, x, y_scale, y_zero_point=None, *, axis=1, saturate=1):
    _quantize(b, x, axis)


@lowering("QuantizeLinear", since=21, emits=("QUANTIZE",), dtypes=QDQ_DTYPES, layout="any")
def quantize_linear_21(b, x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=0, saturate=1):
    _quantize(b, x, axis, block_size, output_dtype)


def _dequantize(b, x, block_size=0):
    if block_size:
        raise Unsupported(f"block_size={block_size} (blocked quantization)")
    if x.quant is None:
        raise Unsupported("its input carries no constant per-tensor quantization parameters",
                          hint="Quantize with `edgekit quantize` (static QDQ).")
    b.emit("DEQUANTIZE", [b.t(x)], [b.out(b.outputs[0])])


@lowering("DequantizeLinear", since=13, emits=("DEQUANTIZE",), dtypes=QDQ_DTYPES, layout="any")
def dequantize_linear_13(b, x, x_scale, x_zero_point=None, *, axis=1):
    _dequantize(b, x)


@lowering("DequantizeLinear", since=21, emits=("DEQUANTIZE",), dtypes=QDQ_DTYPES, layout="any")
def dequantize_linear_21(b, x, x_scale, x_zero_point=None, *, axis=1, block_size=0):
    _dequantize(b, x, block_size)

"""Lowerings, one module per ONNX op family; importing this package registers them all."""
from edgekit.converters.tflite.lowerings import (activation, conv, dense, elementwise, layout, normalization,  # noqa: F401
                                                 pool, quantize, reduce, resize, shape)

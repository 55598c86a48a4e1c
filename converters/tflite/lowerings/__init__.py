"""Lowerings, one module per ONNX op family; importing this package registers them all."""
from edgekit.converters.tflite.lowerings import (activation, attention, conv, dense, einsum, elementwise,  # noqa: F401
                                                 fused,
                                                 layout,
                                                 logic, normalization, pool, quantize, recurrent, reduce, resize,
                                                 shape)

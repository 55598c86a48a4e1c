"""Lowerings, one module per ONNX op family; importing this package registers them all."""
from edgekit.converters.tflite.lowerings import (activation, attention, conv, dense, elementwise, fused,  # noqa: F401
                                                 layout,
                                                 logic, normalization, pool, quantize, recurrent, reduce, resize,
                                                 shape)

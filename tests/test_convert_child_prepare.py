"""A compiled model whose kernel LiteRT cannot prepare must be a clean refusal, never the end of edgekit: the
model is allocated in a forked child first. The model here is written past the compiler's kernel checks on purpose
(an int8 ADD without quantization parameters, which LiteRT aborts on)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.convert import check_litert_prepares
from edgekit.converters.tflite import writer
from edgekit.converters.tflite.tfl import TflGraph, TflOp, TflTensor
from edgekit.errors import UnsupportedModelError


def _tflite(dtype, quant=None) -> bytes:
    g = TflGraph()
    for name in ("a", "b", "y"):
        g.tensors[name] = TflTensor(name, [1, 4], np.dtype(dtype), quant=quant)
    g.ops.append(TflOp("ADD", ["a", "b"], ["y"]))
    g.inputs, g.outputs = ["a", "b"], ["y"]
    return writer.serialize(writer.build_model(g))


def test_a_model_litert_aborts_on_is_refused_and_this_process_lives():
    with pytest.raises(UnsupportedModelError, match="LiteRT aborted"):
        check_litert_prepares(_tflite(np.int8), {})


def test_a_model_litert_prepares_passes_the_check():
    check_litert_prepares(_tflite(np.float32), {})

"""1-D CNNs (keyword spotting over MFCC frames, a dilated TCN with residual adds) export with edgekit's `export`
(dynamo and torchscript), convert with `edgekit.convert.convert` (validated against ONNX Runtime), and run as one
NHWC chain: no TRANSPOSE inside the graph.

TRANSPOSE counts at the edges: a [N,C,L] input is [N,C,1,L] after the Unsqueeze; NHWC of that is [N,1,L,C], a real
move of data (C and L swap), so each 3-D input costs one TRANSPOSE, and so does each 3-D output (the TCN's). The
keyword spotter's output is [1,12] after global pooling, whose NHWC [1,1,1,C] -> NCHW step only moves unit
dimensions and becomes a RESHAPE: 1 TRANSPOSE for it, 2 for the TCN. `nhwc_io` applies to 4-D I/O only, so these
3-D models count the same with it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conv1d_models import MODELS
from edgekit.convert import convert
from edgekit.converters.tflite.inspect import describe_tflite

MODELS_FILE = Path(__file__).with_name("conv1d_models.py")
EDGE_TRANSPOSES = {"keyword_spotter": 1, "tcn": 2}
RTOL = 1e-4  # of each output's scale


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_1d_model_converts_as_one_nhwc_chain(tmp_path, name, exporter):
    from edgekit.converters.torch_export import export

    onnx_path = tmp_path / f"{name}.onnx"
    export(f"{MODELS_FILE}:{name}", onnx_path, input_shapes=[MODELS[name]], exporter=exporter)
    out = tmp_path / f"{name}.tflite"
    result = convert(onnx_path, out)
    assert result.passed
    for o in result.outputs:
        assert o["max_abs"] <= RTOL * o["scale"], f"{name}/{o['name']}: {o}"
    ops = describe_tflite(out)["ops"]
    assert ops.get("TRANSPOSE", 0) == EDGE_TRANSPOSES[name], ops
    assert "MUL" not in ops and "BATCH_MATMUL" not in ops, ops  # BatchNorm folded, pooling kept as pooling ops


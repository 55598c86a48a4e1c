"""Zoo models compile and match ONNX Runtime; CNNs keep transposes at the I/O edges only (none with --nhwc-io)."""
from __future__ import annotations

import pytest

from _differential import assert_converts
from edgekit.converters.tflite import compile_onnx

CASES = [("mlp", ()), ("lenet", ()), ("resnet", ("1x3x64x64",)), ("mobilenet", ("1x3x64x64",)), ("autoencoder", ()),
         ("vae_encoder", ()), ("vae_decoder", ()), ("gan_generator", ()), ("gan_discriminator", ())]
CNNS = {"lenet", "resnet", "mobilenet", "autoencoder", "vae_encoder", "vae_decoder", "gan_generator", "gan_discriminator"}


def inner_transposes(compiled) -> list:
    """TRANSPOSE ops that neither read a model input nor write a model output."""
    g = compiled.graph
    return [op for op in g.ops if op.code == "TRANSPOSE" and op.inputs[0] not in g.inputs and op.outputs[0] not in g.outputs]


@pytest.mark.parametrize("nhwc_io", [False, True], ids=["onnx_io", "nhwc_io"])
@pytest.mark.parametrize("name,shapes", CASES, ids=[c[0] for c in CASES])
def test_zoo_model_converts(zoo_onnx, name, shapes, nhwc_io):
    path = zoo_onnx(name, *shapes)
    compiled = compile_onnx(path, nhwc_io=nhwc_io)
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)
    if name in CNNS:
        assert inner_transposes(compiled) == []
        if nhwc_io:
            assert "TRANSPOSE" not in compiled.op_histogram, compiled.op_histogram


def test_dynamic_batch_kept_as_signature(zoo_onnx):
    path = zoo_onnx("lenet", dynamic_batch=True)
    compiled = compile_onnx(path)
    assert compiled.input_shapes["image"][0] == -1
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)

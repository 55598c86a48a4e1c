"""Zoo models compile and match ONNX Runtime; CNNs keep transposes at the I/O edges only (none with --nhwc-io)."""
from __future__ import annotations

import pytest

from edgekit.convert import validate_tflite
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
    for d in validate_tflite(path, compiled.to_bytes(), compiled.input_shapes, compiled.io_layouts):
        assert d.within(0.0, 1e-4), f"{name}/{d.name}: max_abs {d.max_abs:.3g} at scale {d.scale:.3g}"
    if name in CNNS:
        assert inner_transposes(compiled) == []
        if nhwc_io:
            assert "TRANSPOSE" not in compiled.op_histogram, compiled.op_histogram


def test_dynamic_batch_kept_as_signature(zoo_onnx):
    path = zoo_onnx("lenet", dynamic_batch=True)
    compiled = compile_onnx(path)
    assert compiled.input_shapes["image"][0] == -1
    for d in validate_tflite(path, compiled.to_bytes(), compiled.input_shapes, compiled.io_layouts):  # runs at batch 2
        assert d.within(0.0, 1e-4)

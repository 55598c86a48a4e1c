"""The classic ImageNet CNN architectures (AlexNet, VGG-11 with and without BN, GoogLeNet, SqueezeNet 1.1,
ShuffleNetV2, DenseNet, EfficientNet-Lite0 and -B0) export, convert with `edgekit.convert.convert`, match
ONNX Runtime within 1e-4 of each output's scale, and keep TRANSPOSE ops at the I/O edges only.

ShuffleNetV2 is the one exception, by design: its channel shuffle is a real permutation of the channels
(out[:, 2k + i] = x[:, i*C/2 + k]), which no layout choice makes disappear. The channel_shuffle pass turns
torch's view/transpose/view into one ChannelShuffle lowered in NHWC as RESHAPE [N,H,W,2,C/2] + TRANSPOSE
of the last two axes + RESHAPE, so exactly one TRANSPOSE per shuffle remains and none around it (before
the pass each shuffle cost four, two of them full NHWC<->NCHW relayouts). A GATHER on the channel axis
would avoid the TRANSPOSE, but XNNPACK does not delegate GATHER, so it splits the delegated graph; see
lowerings/fused.py and the shuffle table of `python benchmarks/bench_classic_cnns.py` for the measured choice.
"""
from __future__ import annotations

from pathlib import Path

import onnx
import torch
import pytest

from classic_cnns import ARCHITECTURES
from edgekit.convert import convert
from edgekit.converters.tflite.inspect import describe_tflite

MODELS_FILE = Path(__file__).with_name("classic_cnns.py")
TORCHSCRIPT_TOO = ("squeezenet1_1", "googlenet", "shufflenet_v2_x0_5", "densenet")
RTOL = 1e-4  # of each output's scale, as the issue asks


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgekit.converters.torch_export import export

    cache: dict = {}
    root = tmp_path_factory.mktemp("classic")

    def make(name: str, exporter: str = "dynamo") -> Path:
        if (name, exporter) not in cache:
            factory, shape, _ = ARCHITECTURES[name]
            path = root / f"{name}_{exporter}.onnx"
            export(f"{MODELS_FILE}:{factory}", path, input_shapes=[shape], exporter=exporter)
            cache[name, exporter] = path
        return cache[name, exporter]

    return make


def transposes(path) -> tuple[int, int]:
    """(TRANSPOSE ops that read a model input or write a model output, all other TRANSPOSE ops)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(Path(path).read_bytes(), 0))
    sub = model.subgraphs[0]
    edge = inner = 0
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != fb.BuiltinOperator.TRANSPOSE:
            continue
        if op.inputs[0] in list(sub.inputs) or op.outputs[0] in list(sub.outputs):
            edge += 1
        else:
            inner += 1
    return edge, inner


def four_d_io(onnx_path) -> int:
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return sum(len(v.type.tensor_type.shape.dim) == 4 for v in list(graph.input) + list(graph.output))


def channel_shuffles(onnx_path) -> int:
    """Transposes of the grouped channel axes ([N, g, C/g, H, W] -> [N, C/g, g, H, W]) in the ONNX graph."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return sum(n.op_type == "Transpose" and list(onnx.helper.get_attribute_value(n.attribute[0])) == [0, 2, 1, 3, 4]
               for n in graph.node)


def check(onnx_path, tmp_path, nhwc_io: bool, name: str):
    out = tmp_path / f"{name}{'_nhwc' if nhwc_io else ''}.tflite"
    result = convert(onnx_path, out, nhwc_io=nhwc_io)
    assert result.passed and result.written
    for o in result.outputs:
        assert o["max_abs"] <= RTOL * o["scale"], f"{name}/{o['name']}: {o}"
    ops = describe_tflite(out)["ops"]
    edge, inner = transposes(out)
    shuffles = channel_shuffles(onnx_path)
    assert edge == (0 if nhwc_io else four_d_io(onnx_path)), ops
    assert inner == shuffles, ops  # zero except ShuffleNet (see the module docstring)
    assert ops.get("TRANSPOSE", 0) == edge + inner
    return result, ops


@pytest.mark.parametrize("nhwc_io", [False, True], ids=["onnx_io", "nhwc_io"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_converts(exported, tmp_path, name, nhwc_io):
    path = exported(name)
    result, ops = check(path, tmp_path, nhwc_io, name)
    if name == "shufflenet_v2_x0_5":
        assert channel_shuffles(path) == 16  # one per unit: 4 + 8 + 4
        assert ops["TRANSPOSE"] == 16 + (0 if nhwc_io else 1)
    if name in ("alexnet", "vgg11", "vgg11_bn"):
        # the test inputs leave a 1x1 map that AdaptiveAvgPool2d spreads to 6x6 / 7x7 (torch: GatherND + mean)
        assert ops.get("BATCH_MATMUL") == 1 and "GATHER_ND" not in ops


@pytest.mark.parametrize("name", TORCHSCRIPT_TOO)
def test_torchscript_export_converts(exported, tmp_path, name):
    check(exported(name, "torchscript"), tmp_path, False, name)


def test_batchnorm_folds_into_convolutions(exported, tmp_path):
    """Conv-BN pairs fold; DenseNet's pre-activation BNs (after a concat) stay as MUL + ADD."""
    _, ops = check(exported("vgg11_bn"), tmp_path, True, "vgg11_bn")
    assert "MUL" not in ops and "ADD" not in ops
    _, ops = check(exported("densenet"), tmp_path, True, "densenet")
    assert ops["MUL"] == ops["ADD"] > 0


class AdaptivePool(torch.nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.conv, self.pool = torch.nn.Conv2d(3, 8, 1), torch.nn.AdaptiveAvgPool2d(size)

    def forward(self, x):
        return self.pool(self.conv(x))


@pytest.mark.parametrize("size_in,size_out", [(1, 6), (3, 7), (10, 4), (5, 3)],
                         ids=["spread", "masked_windows", "overlapping", "uneven"])
def test_adaptive_average_pool_that_torch_decomposes(tmp_path, size_in, size_out):
    """Sizes where the output does not divide the input: torch exports GatherND windows (masked when their lengths
    differ); the adaptive_pool pass turns each into one BATCH_MATMUL on NHWC data."""
    torch.manual_seed(0)
    path = tmp_path / "pool.onnx"
    torch.onnx.export(AdaptivePool(size_out).eval(), (torch.randn(1, 3, size_in, size_in),), str(path), dynamo=True,
                      input_names=["x"], external_data=False)
    assert "GatherND" in {n.op_type for n in onnx.load(str(path)).graph.node}
    result = convert(path, tmp_path / "pool.tflite", nhwc_io=True)
    assert result.passed and result.outputs[0]["max_abs"] <= RTOL * result.outputs[0]["scale"]
    assert result.ops == {"CONV_2D": 1, "RESHAPE": 2, "BATCH_MATMUL": 1}

"""edgekit.load and Model: calling conventions, runtime options, declared pre/postprocessing, numpy resizing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.app import Postprocess, Preprocess, resize, softmax
from edgekit.errors import UsageError
from edgekit.runtimes import TensorInfo


def onnx_model(path: Path, text: str, weights: dict | None = None) -> Path:
    import onnx
    import onnx.parser
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n' + text)
    for name, value in (weights or {}).items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def identity_nchw(tmp_path):
    """Returns its 1x3x4x4 input unchanged, so the test sees exactly what preprocessing produced."""
    return onnx_model(tmp_path / "id.onnx", "g (float[1,3,4,4] image) => (float[1,3,4,4] out) { out = Identity(image) }")


@pytest.fixture
def two_inputs(tmp_path):
    return onnx_model(tmp_path / "add.onnx", "g (float[1,4] a, float[1,4] b) => (float[1,4] s) { s = Add(a, b) }")


def test_call_by_array_list_dict_and_keywords(two_inputs):
    a, b = np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32)[None]
    with edgekit.load(two_inputs) as model:
        for result in (model([a, b]), model({"a": a, "b": b}), model(a=a, b=b)):
            np.testing.assert_array_equal(result["s"], a + b)
        assert [i.name for i in model.inputs] == ["a", "b"] and model.outputs[0].name == "s"
        with pytest.raises(UsageError, match="missing"):
            model({"a": a})
        with pytest.raises(UsageError, match="either positionally or by keyword"):
            model([a, b], a=a)


def test_bytes_threads_and_provider(two_inputs):
    with edgekit.load(two_inputs.read_bytes(), threads=1, provider="cpu") as model:
        assert model.session.threads == 1 and model.session.provider == "cpu" and model.runtime == "onnxruntime"
        assert model.describe()["source"] == "<bytes>"
    with pytest.raises(UsageError, match="LiteRT cannot run"):
        edgekit.load(two_inputs, runtime="litert")


def test_signature_options_on_plain_models_are_refused(two_inputs):
    with pytest.raises(UsageError, match="apply to .ekb bundles"):
        edgekit.load(two_inputs, public_key="x.pub")


def test_batch_runs_item_by_item_on_fixed_batch_models(two_inputs):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    with edgekit.load(two_inputs) as model:
        np.testing.assert_allclose(model(a=a, b=b)["s"], a + b, rtol=1e-6)


def test_image_preprocessing_end_to_end(identity_nchw):
    spec = {"resize": "4x4", "resize_method": "area", "layout": "NCHW", "scale": "1/255",
            "mean": "0.5,0.25,0", "std": [0.5, 0.25, 1]}
    image = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    big = np.kron(image, np.ones((3, 3, 1), np.uint8))  # 12x12: area resize restores it exactly
    with edgekit.load(identity_nchw, preprocess=spec) as model:
        got = model(big, preprocess=True)["out"]
    expected = ((image / 255 - [0.5, 0.25, 0]) / [0.5, 0.25, 1]).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with edgekit.load(identity_nchw) as model, pytest.raises(UsageError, match="declares no preprocessing"):
        model(big, preprocess=True)


def test_images_of_different_sizes_become_one_batch(identity_nchw):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((4, 4, 3), (8, 8, 3), (4, 4))]
    with edgekit.load(identity_nchw, preprocess={"layout": "NCHW", "resize_method": "area"}) as model:
        out = model(images, preprocess=True)["out"]
    assert out.shape == (3, 3, 4, 4)
    np.testing.assert_allclose(out[0], images[0].transpose(2, 0, 1))
    np.testing.assert_allclose(out[1], images[1].reshape(4, 2, 4, 2, 3).mean((1, 3)).transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(out[2], np.repeat(images[2][None], 3, 0))  # gray → 3 channels


def test_colour_conversions():
    info = TensorInfo("x", np.dtype("float32"), (1, 1, 2, 2))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 100, 255
    gray = Preprocess.from_spec({"layout": "NCHW", "color": "gray"}, [info]).apply(rgba, info)
    np.testing.assert_allclose(gray, np.full((1, 1, 2, 2), 29.9), rtol=1e-5)  # 0.299 * 100, alpha dropped
    info3 = TensorInfo("x", np.dtype("float32"), (1, 2, 2, 3))
    bgr = Preprocess.from_spec({"layout": "NHWC", "color": "bgr"}, [info3]).apply(rgba[..., :3], info3)
    np.testing.assert_array_equal(bgr[0, 0, 0], [0, 0, 100])


@pytest.mark.parametrize("size", [(8, 11), (13, 17), (37, 53)])
def test_bilinear_resize_matches_pillow(size):
    PIL = pytest.importorskip("PIL.Image")
    img = np.random.default_rng(0).random((23, 31)).astype(np.float32)
    ours = resize(img[:, :, None], size, "bilinear")[:, :, 0]
    theirs = np.asarray(PIL.fromarray(img, mode="F").resize(size[::-1], PIL.BILINEAR))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    nearest = resize(img[:, :, None], size, "nearest")[:, :, 0]
    np.testing.assert_array_equal(nearest, np.asarray(PIL.fromarray(img, mode="F").resize(size[::-1], PIL.NEAREST)))


def test_area_resize_averages_blocks():
    img = np.arange(36, dtype=np.float32).reshape(6, 6, 1)
    np.testing.assert_allclose(resize(img, (3, 2), "area")[:, :, 0], img[:, :, 0].reshape(3, 2, 2, 3).mean((1, 3)))


def test_sequence_preprocessing_layouts():
    info = TensorInfo("w", np.dtype("float32"), (1, 3, 5))  # NCT: channels first
    pre = Preprocess.from_spec({"layout": "NCT", "mean": [1, 2, 3], "std": "2"}, [info])
    assert pre.kind == "tensor"
    seq = np.arange(15, dtype=np.float32).reshape(5, 3)  # data arrive T x C
    np.testing.assert_allclose(pre.apply(seq, info), ((seq - [1, 2, 3]) / 2).T[None])
    with pytest.raises(UsageError, match="apply to images only"):
        Preprocess.from_spec({"layout": "NCT", "resize": "4x4", "kind": "tensor"}, [info])


def test_quantized_inputs_and_outputs():
    q = {"scale": [0.5], "zero_point": [-10]}
    info = TensorInfo("x", np.dtype("int8"), (1, 4), quantization=q)
    pre = Preprocess.from_spec({"kind": "tensor"}, [info])
    np.testing.assert_array_equal(pre.apply(np.array([0.0, 1.0, 100.0, -100.0], np.float32), info),
                                  [[-10, -8, 127, -128]])
    from edgekit.app import _dequantize
    np.testing.assert_allclose(_dequantize(np.array([[-10, 0]], np.int8), info), [[0.0, 5.0]])


def test_postprocess_softmax_top_k_and_labels(tmp_path):
    path = onnx_model(tmp_path / "logits.onnx", "g (float[1,3] x) => (float[1,3] y) { y = Identity(x) }")
    x = np.array([[1.0, 3.0, 2.0]], np.float32)
    with edgekit.load(path, postprocess={"softmax": True, "top_k": 2}, labels=["a", "b", "c"]) as model:
        result = model(x, postprocess=True)
        np.testing.assert_allclose(result["y"], softmax(x), rtol=1e-6)
        assert [(p.label, p.index) for p in result.top_k[0]] == [("b", 1), ("c", 2)]
        assert model.classify(x, top_k=1)[0][0].label == "b"
        assert model(x).top_k is None
    with pytest.raises(UsageError, match="2 labels but output 'y' has 3 classes"):
        edgekit.load(path, labels=["a", "b"], postprocess={})
    with pytest.raises(UsageError, match="Unknown postprocessing option"):
        Postprocess.from_spec({"argmax": True}, [TensorInfo("y", np.dtype("float32"), (1, 3))])


def test_loading_needs_neither_torch_nor_onnx(two_inputs):
    code = (f"import sys, numpy as np, edgekit\n"
            f"m = edgekit.load({str(two_inputs)!r})\n"
            f"print(m(a=np.ones((1, 4), np.float32), b=np.ones((1, 4), np.float32))['s'].sum())\n"
            f"print(sorted(n for n in ('torch', 'onnx', 'onnxscript', 'cryptography') if n in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["8.0", "[]"]

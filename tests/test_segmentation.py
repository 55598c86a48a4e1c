"""segment() in apps: the synthetic-shapes U-Net (zoo:segmenter) trained in seconds gives the same class masks from
ONNX Runtime, the compiled TFLite model and a bundle, at the image's size; the resampling undoes plain resize,
letterbox and strided heads exactly on hand-made logits; mIoU on known cases; bad input is refused clearly."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

import edgekit  # noqa: E402
from edgekit import segmentation as seg  # noqa: E402
from edgekit.bundle import bundle  # noqa: E402
from edgekit.converters.tflite import compile_onnx  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from edgekit.zoo import segmentation as zoo  # noqa: E402

CLASSES = 4  # background + three shapes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Train ~120 steps (seconds), export, compile; held-out images and masks."""
    torch.set_num_threads(1)
    images, masks = zoo.shapes_masks(300, seed=0)
    model = zoo.train(zoo.tiny_unet(), images, masks, steps=120)
    out = tmp_path_factory.mktemp("seg")
    torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(out / "unet.onnx"), input_names=["image"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    (out / "unet.tflite").write_bytes(compile_onnx(str(out / "unet.onnx")).to_bytes())
    test_images, test_masks = zoo.shapes_masks(16, seed=1)
    return out, test_images, test_masks


def test_the_trained_segmenter_labels_the_shapes_as_onnx_runtime_does(built):
    out, images, masks = built
    session = ort.InferenceSession(str(out / "unet.onnx"), providers=["CPUExecutionProvider"])
    matrix = np.zeros((CLASSES, CLASSES), np.int64)
    with edgekit.load(out / "unet.onnx") as model:
        for image, truth in zip(images, masks):
            mask = model.segment(image)
            direct = session.run(None, {"image": zoo.to_input(image[None]).numpy()})[0][0].argmax(0)
            assert mask.shape == (64, 64) and mask.dtype == np.uint8
            assert np.array_equal(mask, direct)  # at the model's own size the resampling is the identity
            matrix += seg.confusion(mask, truth, CLASSES)
    assert seg.miou(matrix)[0] > 0.6  # an untrained net labels everything background: about 0.25


def test_onnx_tflite_and_bundle_give_the_same_mask_at_the_image_size(built, tmp_path):
    out, images, _ = built
    # nearest resize: the 2x3-enlarged image shrinks back to exactly the 64x64 scene, so the model sees the same input
    bundle(out / "unet.tflite", tmp_path / "unet.ekb", preprocess={"kind": "image", "layout": "NCHW", "scale": 1 / 255,
                                                                   "resize": "64x64", "resize_method": "nearest"},
           labels=["background", "rectangle", "circle", "triangle"])
    image = np.repeat(np.repeat(images[2], 2, 0), 3, 1)  # 128x192
    got = {}
    for name in ("unet.onnx", "unet.tflite"):
        with edgekit.load(out / name) as model:
            got[name] = model.segment(image)
            got[name + "@64"] = model.segment(images[2])
    with edgekit.load(tmp_path / "unet.ekb") as model:
        got["ekb"] = model.segment(image)
    assert got["unet.onnx"].shape == (128, 192) and got["ekb"].shape == (128, 192)
    assert np.mean(got["unet.tflite"] == got["unet.onnx"]) > 0.999
    assert np.mean(got["unet.tflite@64"] == got["unet.onnx@64"]) > 0.999
    # the enlarged mask is the 64x64 one enlarged, but for pixels along class boundaries (logits resampled smoothly)
    enlarged = np.repeat(np.repeat(got["unet.tflite@64"], 2, 0), 3, 1)
    assert np.mean(got["ekb"] == enlarged) > 0.95
    assert len(np.unique(got["ekb"])) > 1


def _logits_left_half(layout: str, size: int = 64, stride: int = 1, pad_rows: tuple[int, int] = (0, 64)):
    """Two-class logits: class 1 on the left half of the input, class 1 also on the rows outside `pad_rows`
    (padding, which must never reach the mask)."""
    n = size // stride
    logits = np.zeros((2, n, n), np.float32)
    logits[1, :, : n // 2] = 1.0
    logits[0, :, n // 2:] = 1.0
    top, bottom = pad_rows[0] // stride, pad_rows[1] // stride
    logits[1, :top], logits[0, :top] = 5.0, 0.0
    logits[1, bottom:], logits[0, bottom:] = 5.0, 0.0
    logits = logits[None]
    return logits if layout == "NCHW" else np.transpose(logits, (0, 2, 3, 1))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("stride", [1, 8])
def test_class_mask_undoes_letterbox_padding_and_strided_heads(layout, stride):
    # a 40x80 image letterboxed into 64x64: gain 0.8, content rows 16..48
    logits = _logits_left_half(layout, stride=stride, pad_rows=(16, 48))
    mask = seg.class_mask(logits, layout, (40, 80), (64, 64), gain=(0.8, 0.8), pad=(16.0, 0.0))
    want = np.zeros((40, 80), np.uint8)
    want[:, :40] = 1
    assert mask.shape == (40, 80)
    assert np.array_equal(mask, want)


def test_class_mask_undoes_a_plain_resize():
    logits = _logits_left_half("NCHW")
    mask = seg.class_mask(logits, "NCHW", (30, 100), (64, 64))
    assert np.array_equal(mask[:, :50], np.ones((30, 50), np.uint8)) and not mask[:, 50:].any()


def test_miou_on_known_cases():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    matrix = seg.confusion(np.array([[0, 0, 1, 1], [0, 1, 1, 1]]), truth, 3)
    value, per_class = seg.miou(matrix)
    assert per_class[0] == pytest.approx(3 / 4) and per_class[1] == pytest.approx(4 / 5) and np.isnan(per_class[2])
    assert value == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert seg.miou(seg.confusion(truth, truth, 2))[0] == 1.0
    with pytest.raises(UsageError, match="holds class 5"):
        seg.confusion(np.full((2, 4), 5), truth, 3)


def test_bad_input_to_segment_is_refused_clearly(built, tmp_path):
    out, images, _ = built
    (tmp_path / "notes.png").write_text("not an image at all")
    with edgekit.load(out / "unet.onnx") as model:
        with pytest.raises(UsageError, match="notes.png' is not an image file Pillow can read"):
            model.segment(tmp_path / "notes.png")
        with pytest.raises(UsageError, match="grayscale"):
            model.segment(images[0, :, :, 0])
        with pytest.raises(UsageError, match=r"segment\(\) takes one image"):
            model.segment(None)
    detector_like = tmp_path / "detector.onnx"
    _write_head_model(detector_like)
    with edgekit.load(detector_like) as model:
        with pytest.raises(UsageError, match="no per-pixel class-logit outputs"):
            model.segment(images[0])


def test_an_image_file_segments_like_its_pixels(built, tmp_path):
    from PIL import Image
    out, images, _ = built
    Image.fromarray(images[4]).save(tmp_path / "shapes.png")
    with edgekit.load(out / "unet.onnx") as model:
        assert np.array_equal(model.segment(tmp_path / "shapes.png"), model.segment(images[4]))
        assert np.array_equal(model.segment(str(tmp_path / "shapes.png")), model.segment(Image.fromarray(images[4])))


def _write_head_model(path):
    """A model whose only output is a detection head [1, 6, 2048]: not something segment() can read."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"]),
         helper.make_node("Reshape", ["flat", "shape"], ["head"])], "head",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("head", TensorProto.FLOAT, [1, 6, 2048])],
        [helper.make_tensor("shape", TensorProto.INT64, [3], [1, 6, -1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))

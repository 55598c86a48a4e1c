"""A plain .onnx/.tflite from `edgekit export zoo:detector|segmenter` carries its own processing (letterbox, scale,
layout) and labels in its metadata, and convert carries them into the .tflite: detect()/segment() on the file alone
give what a bundle declaring the same processing gives, and what numpy decode of ONNX Runtime's head gives after the
same letterbox. The head (decode + NMS in numpy) and the NMS-inside model give the same boxes on both runtimes."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

torch = pytest.importorskip("torch")

import edgekit  # noqa: E402
from edgekit import detection as det  # noqa: E402
from edgekit.bundle import bundle  # noqa: E402
from edgekit.convert import convert  # noqa: E402
from edgekit.converters.torch_export import export  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from edgekit.processing import PROCESSING_KEY, letterbox  # noqa: E402
from edgekit.zoo import detection as zoo  # noqa: E402

LABELS = ["rectangle", "circle", "triangle"]
LETTERBOX = {"kind": "image", "layout": "NCHW", "scale": 1 / 255, "letterbox": True}


@pytest.fixture(scope="module")
def files(tmp_path_factory, trained_detector):
    """Train ~120 steps (seconds), then `export zoo:detector --weights` with and without --nms, each converted."""
    out = tmp_path_factory.mktemp("det_processing")
    model = trained_detector(120)
    torch.save(model.state_dict(), out / "weights.pt")
    export("zoo:detector", out / "head.onnx", weights=str(out / "weights.pt"))
    export("zoo:detector", out / "nms.onnx", weights=str(out / "weights.pt"), nms={"max_det": 100})
    for name in ("head", "nms"):
        convert(out / f"{name}.onnx", out / f"{name}.tflite")
    return out


def scene(seed: int) -> np.ndarray:
    """A held-out 64x64 scene at 2x inside a wider 128x176 image (noise on the right): letterbox and plain resize
    map it differently, and letterbox keeps the shapes' proportions."""
    images, _ = zoo.shapes_dataset(1, seed=seed)
    wide = np.random.default_rng(seed).integers(0, 80, (128, 176, 3)).astype(np.uint8)
    wide[:, :128] = np.repeat(np.repeat(images[0], 2, 0), 2, 1)
    return wide


def numpy_reference(head_onnx, image, conf=0.25, iou=0.45, max_det=100):
    """Letterbox to 64x64, scale 1/255, NCHW; the head on ONNX Runtime; decode + NMS in numpy; back to image pixels."""
    fitted, gain, pad = letterbox(image.astype(np.float32), (64, 64))
    x = (fitted / 255).transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(str(head_onnx), providers=["CPUExecutionProvider"])
    found = det.postprocess_head(session.run(None, {"image": x})[0], conf, iou, max_det)
    boxes = (found["boxes"] - [pad[1], pad[0], pad[1], pad[0]]) / [gain[1], gain[0], gain[1], gain[0]]
    return np.clip(boxes, 0, [image.shape[1], image.shape[0]] * 2), found["classes"]


def test_export_writes_the_zoo_processing_and_convert_carries_it_into_the_tflite(files):
    from edgekit.runtimes import load
    for name in ("head.onnx", "head.tflite", "nms.onnx", "nms.tflite"):
        with load(str(files / name)) as session:
            declared = json.loads(session.metadata[PROCESSING_KEY])
        assert declared["labels"] == LABELS and declared["preprocess"]["letterbox"] is True, name
        with edgekit.load(files / name) as model:
            assert model.describe()["preprocess"]["letterbox"] is True and model.labels == LABELS


def test_detect_on_the_tflite_alone_letterboxes_as_the_bundle_and_numpy_decode_on_ort(files, tmp_path):
    bundle(files / "nms.tflite", tmp_path / "nms.ekb", preprocess=LETTERBOX, labels=LABELS)
    for seed in (1, 2, 3):
        image = scene(seed)
        want_boxes, want_classes = numpy_reference(files / "head.onnx", image)
        assert len(want_boxes), "the trained detector finds shapes in the held-out scene"
        for source in ("nms.tflite", "head.tflite", "nms.onnx", "head.onnx", tmp_path / "nms.ekb"):
            with edgekit.load(files / source) as model:
                got = model.detect(image)
            assert np.array_equal(got.classes, want_classes), (source, seed)
            np.testing.assert_allclose(got.boxes, want_boxes, atol=0.05, err_msg=f"{source} seed {seed}")
            assert got.labels == [LABELS[c] for c in want_classes]
        with edgekit.load(files / "nms.tflite", preprocess={**LETTERBOX, "letterbox": False}) as plain:
            resized = plain.detect(image)  # load()'s own argument overrides the metadata: a different mapping
        assert len(resized.boxes) != len(want_boxes) or not np.allclose(resized.boxes, want_boxes, atol=1.0)


def test_segment_on_the_exported_segmenter_tflite_alone_letterboxes(tmp_path):
    from edgekit import segmentation as seg
    export("zoo:segmenter", tmp_path / "seg.onnx")
    convert(tmp_path / "seg.onnx", tmp_path / "seg.tflite")
    image = scene(4)
    with edgekit.load(tmp_path / "seg.tflite") as model:
        assert model.labels == ["background", *LABELS]
        got = model.segment(image)
    fitted, gain, pad = letterbox(image.astype(np.float32), (64, 64))
    session = ort.InferenceSession(str(tmp_path / "seg.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": (fitted / 255).transpose(2, 0, 1)[None].astype(np.float32)})[0]
    want = seg.class_mask(logits, "NCHW", image.shape[:2], (64, 64), gain, pad)
    assert got.shape == image.shape[:2] and (got == want).mean() > 0.999


def tiny_classifier(path, processing: str):
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["probs"], axis=-1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key=PROCESSING_KEY, value=processing)
    onnx.save(model, str(path))
    return path


def test_a_classifier_file_names_its_classes_from_its_metadata(tmp_path):
    path = tiny_classifier(tmp_path / "c.onnx", json.dumps({"labels": ["cat", "dog", "fox"],
                                                            "postprocess": {"top_k": 2}}))
    with edgekit.load(path) as model:
        top = model.classify(np.float32([[0.1, 2.0, 0.5]]))
    assert [(p.label, p.index) for p in top[0]] == [("dog", 1), ("fox", 2)]


@pytest.mark.parametrize("processing, message", [
    ("not json", "is not a JSON object"),
    (json.dumps({"labels": ["a", "b", "c"], "colour": "rgb"}), r"unknown top-level keys \['colour'\]"),
    (json.dumps({"labels": ["a", "b"]}), "There are 2 labels but output 'probs' has 3 classes"),
])
def test_unreadable_processing_metadata_is_refused_clearly_unless_overridden(tmp_path, processing, message):
    path = tiny_classifier(tmp_path / "c.onnx", processing)
    with pytest.raises(UsageError, match=message):
        edgekit.load(path)
    with edgekit.load(path, preprocess={"kind": "tensor"}, postprocess={}, labels=["x", "y", "z"]) as model:
        assert model.classify(np.float32([[0, 1, 0]]))[0][0].label == "y"


def ssd_style_head(path, rng, classes=3, anchors=40):
    """A model image [1, 3, 32, 32] → an xyxy head [1, 4 + classes, anchors] (corners, as an SSD box coder gives),
    marked as such: a fixed random head plus 0 * mean(image), so both runtimes compute it."""
    corners = rng.uniform(0, 20, (2, anchors)).astype(np.float32)
    head = np.concatenate([corners, corners + rng.uniform(3, 12, (2, anchors)),
                           rng.uniform(0, 1, (classes, anchors))]).astype(np.float32)[None]
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], keepdims=0),
             helper.make_node("Reshape", ["m", "one"], ["m1"]),
             helper.make_node("Mul", ["m1", "zero"], ["z"]),
             helper.make_node("Add", ["table", "z"], ["head"])]
    graph = helper.make_graph(nodes, "ssd", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("head", TensorProto.FLOAT, list(head.shape))],
                              [onnx.numpy_helper.from_array(head, "table"),
                               onnx.numpy_helper.from_array(np.int64([1, 1, 1]), "one"),
                               onnx.numpy_helper.from_array(np.float32([0]), "zero")])
    model = det.mark_head(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "head", "xyxy")
    onnx.save(model, str(path))
    return model


def test_an_xyxy_head_through_detect_gives_the_boxes_of_its_nms_inside_model_on_both_runtimes(tmp_path):
    head = ssd_style_head(tmp_path / "head.onnx", np.random.default_rng(5))
    onnx.save(det.append_nms(head, conf=0.25, max_det=30, box_format="xyxy"), str(tmp_path / "nms.onnx"))
    for name in ("head", "nms"):  # convert carries the head's mark (its box format) into the .tflite
        convert(tmp_path / f"{name}.onnx", tmp_path / f"{name}.tflite")
    image = np.random.default_rng(6).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    results = {}
    for name in ("head.onnx", "head.tflite", "nms.onnx", "nms.tflite"):
        with edgekit.load(tmp_path / name) as model:
            results[name] = model.detect(image, max_det=30)
    want = results["nms.onnx"]
    assert len(want.boxes) > 3
    for name, got in results.items():
        assert np.array_equal(got.classes, want.classes), name
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3, err_msg=name)

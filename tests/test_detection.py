"""The synthetic-shapes detector end to end: NMS appended to its exported head runs the same in ONNX Runtime, numpy
and the compiled TFLite model (kept boxes matched at IoU >= 0.99, same count); detect() gives the same boxes with NMS
inside or outside the model; bad input is refused clearly."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from edgekit import detection as det  # noqa: E402
from edgekit import detection_metrics as dm  # noqa: E402
from edgekit.converters.tflite import compile_onnx  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from edgekit.zoo import detection as zoo  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_detector):
    """Train for ~250 steps (seconds), export the decoded head; held-out images and labels."""
    model = trained_detector(250)
    path = tmp_path_factory.mktemp("det") / "head.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["image"],
                      output_names=["detections"], opset_version=17, dynamo=False)
    test_images, test_labels = zoo.shapes_dataset(40, seed=1)
    return onnx.load(str(path)), test_images, test_labels


def ort_outputs(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))


def tflite_outputs(data, x):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def test_the_trained_detector_finds_the_shapes(trained):
    head, images, labels = trained
    xs = zoo.to_input(images).numpy()
    found = [det.postprocess_head(ort_outputs(head, x[None])["detections"]) for x in xs]
    assert dm.map50(found, labels) > 0.8


def test_appended_nms_equals_numpy_and_compiles_to_the_same_boxes(trained):
    head, images, _ = trained
    with_nms = det.append_nms(head, conf=0.25, iou=0.45, max_det=20)
    compiled = compile_onnx(with_nms)
    assert compiled.op_histogram["NON_MAX_SUPPRESSION_V5"] == 1
    data = compiled.to_bytes()
    counts = []
    for x in zoo.to_input(images).numpy():
        x = x[None]
        reference = det.unpad(ort_outputs(with_nms, x))
        numpy_nms = det.postprocess_head(ort_outputs(head, x)["detections"], 0.25, 0.45, 20)
        assert np.array_equal(reference["classes"], numpy_nms["classes"])
        np.testing.assert_allclose(reference["boxes"], numpy_nms["boxes"], atol=1e-4)
        got = det.unpad(tflite_outputs(data, x))
        assert len(got["boxes"]) == len(reference["boxes"])
        assert np.array_equal(got["classes"], reference["classes"])
        ious = np.diag(det.iou_matrix(got["boxes"], reference["boxes"])) if len(got["boxes"]) else np.ones(1)
        assert ious.min() >= 0.99
        counts.append(len(got["boxes"]))
    assert sum(counts) > len(counts)  # the scenes hold boxes


def test_padding_rows_and_count(trained):
    head, images, _ = trained
    out = ort_outputs(det.append_nms(head, conf=0.5, max_det=10), zoo.to_input(images[:1]).numpy())
    count = int(out["count"][0])
    assert out["boxes"].shape == (1, 10, 4) and 0 < count < 10
    assert np.all(out["classes"][0, count:] == -1) and np.all(out["scores"][0, count:] == 0)


def test_detect_gives_the_same_boxes_with_nms_inside_or_outside(trained, tmp_path):
    import edgekit
    head, images, _ = trained
    (tmp_path / "head.onnx").write_bytes(head.SerializeToString())
    (tmp_path / "nms.onnx").write_bytes(det.append_nms(head, max_det=100).SerializeToString())
    (tmp_path / "nms.tflite").write_bytes(compile_onnx(det.append_nms(head, max_det=100)).to_bytes())
    image = np.repeat(np.repeat(images[3], 2, 0), 3, 1)  # 128x192: boxes come back in these pixels
    results = [edgekit.load(tmp_path / name).detect(image) for name in ("head.onnx", "nms.onnx", "nms.tflite")]
    for other in results[1:]:
        assert np.array_equal(other.classes, results[0].classes)
        np.testing.assert_allclose(other.boxes, results[0].boxes, atol=0.05)
    assert len(results[0].boxes) and results[0].boxes[:, 2].max() > 64


@pytest.mark.parametrize("image, kwargs, message", [
    (["not", "an image"], {}, "takes one image as an HxWx3 numpy array"),
    ("no/such/image.png", {}, "There is no image file 'no/such/image.png'"),
    (np.zeros((64, 64), np.uint8), {}, "grayscale"),
    (np.zeros((64, 64, 3), np.uint8), {"conf": 1.5}, r"conf=1.5 is outside \[0, 1\]"),
    (np.zeros((64, 64, 3), np.uint8), {"iou": -0.1}, r"iou=-0.1 is outside \[0, 1\]"),
    (np.zeros((64, 64, 3), np.uint8), {"max_det": 0}, "max_det=0 must be a positive integer"),
])
def test_bad_input_to_detect_is_refused_clearly(trained, tmp_path, image, kwargs, message):
    import edgekit
    (tmp_path / "head.onnx").write_bytes(trained[0].SerializeToString())
    with pytest.raises(UsageError, match=message):
        edgekit.load(tmp_path / "head.onnx").detect(image, **kwargs)


def test_agreement_and_map_on_known_cases():
    ref = {"boxes": np.asarray([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), "scores": np.asarray([0.9, 0.8]),
           "classes": np.asarray([0, 1])}
    shifted = {**ref, "boxes": ref["boxes"] + 1}
    wrong_class = {**ref, "classes": np.asarray([0, 0])}
    assert dm.agreement(ref, ref).precision == 1.0 and dm.agreement(ref, shifted).recall == 1.0
    result = dm.agreement(ref, wrong_class)
    assert (result.precision, result.recall, result.matched) == (0.5, 0.5, 1)
    labels = [{"boxes": ref["boxes"], "classes": ref["classes"]}]
    assert dm.map50([ref], labels) == 1.0
    assert dm.map50([wrong_class], labels) == 0.5  # class 1 missed entirely
